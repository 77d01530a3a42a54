#!/usr/bin/env bash
# The main job on the shipped sample data: sets the machine up (idempotent), builds the medseg tool and runs the whole
# DASP flow on the Kvasir-SEG sample (data/kvasir-seg-sample) with live progress bars: mask diffusion → image diffusion
# → Diff-PGD with the uncertainty map W → U-Net on real + attacked generated pairs, compared with No-Aug and Basic on
# the same held-out split. Writes runs/dasp/ (metrics.json, comparison.md, dasp_evaluation.json, figures/, model.zip).
# The settings below are sized for 2 CPU cores; any option given on the command line replaces its default here, e.g.
#   bash build/demo.sh --epochs 40 --diffusion-epochs 100 --synthetic 2 --device cuda   (see 'medseg dasp --help').
set -euo pipefail
cd "$(dirname "$0")/.."
bash build/setup.sh
dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q
defaults=(--data data/kvasir-seg-sample --out runs/dasp --size 64 --epochs 20 --sample-steps 10 --synthetic 1 --attack-every 10)
# GENERATORS=none trains the diffusion models in the run instead of using the shipped ones (or give another model file).
generators=${GENERATORS:-data/models/kvasir-64-generators.zip}
if [ "$generators" != none ] && [ ! -f "$generators" ] && [ -n "${GENERATORS:-}" ]; then
  echo "demo: GENERATORS='$generators' is not a file (give a 'medseg generate --save-model' zip, or none)" >&2; exit 1
fi
if [ "$generators" != none ] && [ -f "$generators" ]; then
  # The shipped generators (trained on Kvasir-SEG without the sample's pairs, data/models/README.md) and the ImageNet
  # ResNet-18 encoder: four methods over three training seeds, with the paired verdict against No-Aug.
  defaults+=(--generators "$generators" --encoder resnet18 --encoder-weights imagenet --seeds 1,2,3
             --methods noaug,basic,generated,dasp)
else
  # No shipped generators yet: the flow trains small diffusion models itself (one seed).
  defaults+=(--widths 16,32,64,128 --diffusion-epochs 15 --diffusion-width 16 --methods noaug,basic,dasp)
fi
args=("$@")
given() { local a; for a in "${args[@]}"; do [[ $a == "$1" || $a == "$1="* ]] && return 0; done; return 1; }
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
  given "${defaults[i]}" || args+=("${defaults[i]}" "${defaults[i + 1]}")
done
exec src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/medseg dasp "${args[@]}"
