#!/usr/bin/env bash
# The main job on the shipped sample data: sets the machine up (idempotent), builds the medseg tool and runs DASP's
# comparison on the Kvasir-SEG sample (data/kvasir-seg-sample) with live progress bars: a U-Net with the ImageNet
# ResNet-18 encoder trained as No-Aug, Basic, Generated (the shipped generators' pairs) and DASP (those pairs attacked
# with Diff-PGD and the uncertainty map W), scored on the same 24 held-out pairs, with a paired bootstrap verdict
# against No-Aug. Writes runs/dasp/ (seeds.md, seeds.json, metrics.json, comparison.md, runs.json, figures/, model.zip).
# The settings below are sized for 2 CPU cores (about 11 minutes); any option given on the command line replaces its
# default here, e.g. --seeds 1,2,3 (three training seeds, about 30 minutes) or --epochs 40 --device cuda
# (see 'medseg dasp --help'). GENERATORS=none trains the diffusion models in the run instead (the flow before the
# shipped generators: small models, noise-like pairs at CPU budgets).
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
  # ResNet-18 encoder: four methods, one training seed, with the paired verdict against No-Aug.
  defaults+=(--generators "$generators" --encoder resnet18 --encoder-weights imagenet --seeds 1
             --methods noaug,basic,generated,dasp)
else
  # Without generators (GENERATORS=none, or none shipped): the flow trains small diffusion models itself (one seed).
  defaults+=(--widths 16,32,64,128 --diffusion-epochs 15 --diffusion-width 16 --methods noaug,basic,dasp)
fi
args=("$@")
given() { local a; for a in "${args[@]}"; do [[ $a == "$1" || $a == "$1="* ]] && return 0; done; return 1; }
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
  given "${defaults[i]}" || args+=("${defaults[i]}" "${defaults[i + 1]}")
done
exec src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/medseg dasp "${args[@]}"
