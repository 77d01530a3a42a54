#!/usr/bin/env bash
# The main job on the shipped sample data: sets the machine up (idempotent), builds the medseg tool and runs the whole
# DASP flow on the Kvasir-SEG sample (data/kvasir-seg-sample) with live progress bars: mask diffusion → image diffusion
# → Diff-PGD with the uncertainty map W → U-Net on real + attacked generated pairs, compared with No-Aug and Basic on
# the same held-out split. Writes runs/dasp/ (metrics.json, comparison.md, dasp_evaluation.json, figures/, model.zip).
# Extra arguments go to 'medseg dasp', e.g. --epochs 40 --diffusion-epochs 100 --device cuda (see 'medseg dasp --help').
set -euo pipefail
cd "$(dirname "$0")/.."
bash build/setup.sh
dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q
exec src/MLNetMedSeg.Cli/bin/Release/net10.0/medseg dasp --data data/kvasir-seg-sample --out runs/dasp "$@"
