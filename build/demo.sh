#!/usr/bin/env bash
# The main job on the shipped sample data: sets the machine up (idempotent), builds, trains a U-Net on the Kvasir-SEG
# sample (data/kvasir-seg-sample) with a live progress bar, evaluates it on the held-out split and writes
# runs/<name>/ (metrics.json, metrics.md, overlays/*.png, loss_curve.png, model.zip). Extra arguments go to the
# program, e.g. --backbone linknet --augment basic --epochs 40 --size 96 --device cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
bash build/setup.sh
exec dotnet run --project examples/PolypSegmentation -c Release -- "$@"
