#!/usr/bin/env bash
# README's DASP comparison on the real polyp data: a seeded subset of Kvasir-SEG (../shared/data/kvasir-seg; Jha et al.,
# MMM 2020, research and education use only) trained and evaluated with 'medseg dasp' on one held-out split:
# No-Aug, Basic, FGSM, Inverse-FGSM (paper 001), generated pairs without attack, PGD with W, Diff-PGD without W and DASP
# (DASP Table 2's ablation rows), each scored in the papers' convention (per-image mIoU/mDice at threshold 0.5) and,
# as paper 001's Table 2, under FGSM ε ∈ {0, 0.05, 0.1, 0.15, 0.2}.
# Usage: build/dasp-table.sh [DATA_DIR]. Environment: PAIRS (200: pairs drawn from the data), SIZE (64), EPOCHS (15),
# DIFFUSION_EPOCHS (30), DIFFUSION_WIDTH (16), WIDTHS (16,32,64,128: the U-Net's encoder), ATTACK_EVERY (5), METHODS, SEED (1), DEVICE (cpu),
# OUT (runs/dasp-table), MEDSEG_BIN (a folder holding a built medseg, e.g. on a machine with a .NET runtime but no SDK:
# skips the set-up and the build, and runs it in place), GENERATORS, ENCODER, ENCODER_WEIGHTS, SEEDS (below).
# build/parallel-tables.sh runs it once per (method, seed) as parallel jobs on one GPU and joins the parts with
# 'medseg dasp-summary' (each method trains from its own seed, so the parts give the joint run's rows).
# With the shipped generators (GENERATORS, default data/models/kvasir-64-generators.zip when it exists; GENERATORS=none
# trains them in the run): the training subset is drawn from the pairs the generators were trained on (Kvasir-SEG
# without the shipped sample's 120 stems) and the held-out set is the sample's 120 pairs in their original files, so no
# test image was seen by the generators; the segmenters take ENCODER (resnet18) with ENCODER_WEIGHTS (imagenet), and every
# method runs over SEEDS (1,2,3) — seeds.md then gives mean ± sd and each method against No-Aug (paired bootstrap).
# Writes runs/dasp-table/ (the run folder of 'medseg dasp': metrics.json, comparison.md, figures/, model.zip) and
# prints the Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/kvasir-seg}
pairs=${PAIRS:-200}; size=${SIZE:-64}; epochs=${EPOCHS:-15}; diffusion_epochs=${DIFFUSION_EPOCHS:-30}; diffusion_width=${DIFFUSION_WIDTH:-16}
widths=${WIDTHS:-16,32,64,128}; every=${ATTACK_EVERY:-5}; seed=${SEED:-1}; device=${DEVICE:-cpu}
methods=${METHODS:-noaug,dasp,diffpgd,pgd,generated,fgsm,ifgsm,basic}
out=${OUT:-runs/dasp-table}
generators=${GENERATORS:-data/models/kvasir-64-generators.zip}; [ -f "$generators" ] || generators=none
encoder=${ENCODER:-resnet18}; encoder_weights=${ENCODER_WEIGHTS:-imagenet}; seeds=${SEEDS:-1,2,3}
bin=${MEDSEG_BIN:-src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64}
if [ -z "${MEDSEG_BIN:-}" ]; then
  bash build/setup.sh >/dev/null
  dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
fi
# A private copy of the tool, so that rebuilding the tree while this runs does not pull the binaries away (a given
# MEDSEG_BIN is run where it is).
rm -rf "$out/bin" "$out/subset" "$out/heldout"; mkdir -p "$out/subset/images" "$out/subset/masks"
if [ -z "${MEDSEG_BIN:-}" ]; then mkdir -p "$out/bin"; cp -r "$bin"/. "$out/bin/"; tool="$out/bin"; else tool="$MEDSEG_BIN"; fi
link() { ln -s "$(realpath "$data"/images/"$1".*)" "$2/images/"; ln -s "$(realpath "$data"/masks/"$1".*)" "$2/masks/"; }
sample_stems() { ls data/kvasir-seg-sample/images | sed 's/\.[^.]*$//' | sort; }
if [ "$generators" != none ]; then
  # Held out: the sample's stems (never seen by the generators); the subset is drawn from the other pairs.
  mkdir -p "$out/heldout/images" "$out/heldout/masks"
  sample_stems | while read -r stem; do link "$stem" "$out/heldout"; done
  candidates() { ls "$data/images" | sed 's/\.[^.]*$//' | sort | comm -23 - <(sample_stems); }
else
  candidates() { ls "$data/images" | sed 's/\.[^.]*$//' | sort; }
fi
# The subset: PAIRS stems drawn with the seed, linked (not copied).
candidates | awk -v s="$seed" 'BEGIN{srand(s)} {print rand() "\t" $0}' | sort -k1,1 | awk -v n="$pairs" 'NR <= n' | cut -f2 |
while read -r stem; do link "$stem" "$out/subset"; done
extra=()
if [ "$generators" != none ]; then
  extra=(--generators "$generators" --test "$out/heldout" --encoder "$encoder" --encoder-weights "$encoder_weights" --seeds "$seeds")
else
  extra=(--widths "$widths" --diffusion-epochs "$diffusion_epochs" --diffusion-width "$diffusion_width")
fi
start=$(date +%s)
dotnet "$tool/medseg.dll" dasp --data "$out/subset" --size "$size" --epochs "$epochs" "${extra[@]}" \
  --attack-every "$every" --methods "$methods" --seed "$seed" --device "$device" --out "$out" 2> "$out/log.txt"
echo "total: $(( ($(date +%s) - start) / 60 )) min on $(nproc) cores"
[ -f "$out/seeds.md" ] && cat "$out/seeds.md"
cat "$out/comparison.md"
