#!/usr/bin/env bash
# The main demo: sets the machine up (idempotent), builds, and trains a small CNN on synthetic discs with a live
# progress bar. Extra arguments go to the program (e.g. --epochs 50 --seed 1 --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
bash build/setup.sh
exec dotnet run --project examples/ToySegmentation -c Release -- "$@"
