#!/usr/bin/env bash
# Paper 002's Table 1 on polyps: a U-Net is trained on Kvasir-SEG at reduced size, then the VAE-GAN deformation attacker
# (medseg deform-attack) is trained against it on the training images for each ξ and scored on the held-out images
# (Dice before/after, success rate at a 30% Dice decrease, perceptibility p), with the D-only and V-only rows at ξ = 2.
# Then the augmenter comparison: a second U-Net trained on the training images plus their ξ = AUG_XI attacks (attacked
# image + ground truth moved by D), both U-Nets scored on the clean test images and on the ξ = 2 attacks of them.
# Usage: build/deform-table.sh [DATA_DIR] (default ../shared/data/kvasir-seg, else data/kvasir-seg-sample).
# Environment: N (pairs used, 200), SIZE (64), EPOCHS (segmenter epochs, 10), ATTACK_EPOCHS (20), XIS ("0.5 1 1.5 2 2.5 3"),
# AUG_XI (2), LR (attacker learning rate, 1e-4 as the paper), ADV_WEIGHT (1), SEED (1), DEVICE (cpu),
# SEGMENTER (a U-Net zip trained by an earlier run with the same N and SEED: skips training it), AUGMENT (1; 0 skips the
# augmenter comparison), OUT (runs/deform-table), PARALLEL (1: the attacks of the sweep run at once, for a GPU),
# MEDSEG_BIN (a folder holding a built medseg.dll, e.g. on a machine with a .NET runtime but no SDK: skips the build).
# Writes runs/deform-table/ (logs, reports, attacked images, figure.png per ξ) and prints runs/deform-table/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/kvasir-seg}
[ -d "$data/images" ] || data=data/kvasir-seg-sample
n=${N:-200}; size=${SIZE:-64}; epochs=${EPOCHS:-10}; attack_epochs=${ATTACK_EPOCHS:-20}
xis=${XIS:-"0.5 1 1.5 2 2.5 3"}; aug_xi=${AUG_XI:-2}; lr=${LR:-1e-4}; adv=${ADV_WEIGHT:-1}; seed=${SEED:-1}; device=${DEVICE:-cpu}
segmenter=${SEGMENTER:-}; augment=${AUGMENT:-1}
out=${OUT:-runs/deform-table}; parallel=${PARALLEL:-0}
[ -n "$segmenter" ] && cp "$segmenter" /tmp/deform-table-unet.$$.zip
rm -rf "$out"; mkdir -p "$out"
if [ -n "${MEDSEG_BIN:-}" ]; then cp -r "$MEDSEG_BIN" "$out/bin"
else
  dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
  cp -r src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64 "$out/bin" # a private copy: rebuilding the tree does not disturb the run
fi
medseg() { dotnet "$out/bin/medseg.dll" "$@"; }
start=$(date +%s)

# 80/20 split of the first N pairs (sorted by stem), as symbolic links.
mapfile -t stems < <(ls "$data/images" | sed 's/\.[^.]*$//' | sort | head -n "$n")
ntrain=$(( ${#stems[@]} * 8 / 10 ))
for part in train test; do mkdir -p "$out/$part/images" "$out/$part/masks"; done
for i in "${!stems[@]}"; do
  s=${stems[$i]}; part=train; [ "$i" -ge "$ntrain" ] && part=test
  img=$(ls "$data/images/$s".* | head -1); msk=$(ls "$data/masks/$s".* | head -1)
  ln -s "$(realpath "$img")" "$out/$part/images/$(basename "$img")"
  ln -s "$(realpath "$msk")" "$out/$part/masks/$(basename "$msk")"
done
echo "data: $data, ${#stems[@]} pairs ($ntrain train, $(( ${#stems[@]} - ntrain )) test) at ${size}x${size}"

if [ -n "$segmenter" ]; then
  mv /tmp/deform-table-unet.$$.zip "$out/unet.zip"; echo "U-Net from $segmenter"
else
  medseg train --data "$out/train" --val-fraction 0 --size "$size" --epochs "$epochs" --seed "$seed" --device "$device" \
    --out "$out/unet.zip" > "$out/unet.log" 2>&1
  echo "U-Net trained ($(( $(date +%s) - start )) s)"
fi

attack() { # name xi variant [extra args]
  local name=$1 xi=$2 variant=$3; shift 3
  medseg deform-attack --model "$out/unet.zip" --data "$out/train" --eval "$out/test" --xi "$xi" --variant "$variant" \
    --epochs "$attack_epochs" --lr "$lr" --adv-weight "$adv" --seed "$seed" --device "$device" --out "$out/$name" "$@" > "$out/$name.log" 2>&1
  echo "$name: $(tail -1 "$out/$name.log")"
}
if [ "$parallel" = 1 ]; then
  for xi in $xis; do attack "xi-$xi" "$xi" dv & done
  attack "d-only" 2 d &
  attack "v-only" 2 v &
  wait
else
  for xi in $xis; do attack "xi-$xi" "$xi" dv; done
  attack "d-only" 2 d
  attack "v-only" 2 v
fi

table="$out/table.md"
row() { # label report.json
  jq -r --arg l "$1" '"| \($l) | \(.per_class[0].dice_after * 10000 | round / 100) | \(.success_rate * 100 | round) % | \(.p * 1000 | round / 1000) |"' "$2"
}
first=$(ls "$out"/xi-*/report.json | head -1)
{
  echo "| configuration | Dice polyp (%) | success rate | p |"
  echo "| --- | ---: | ---: | ---: |"
  jq -r '"| U-Net | \(.per_class[0].dice_before * 10000 | round / 100) | - | - |"' "$first"
  jq -r '"| U-Net 30% decrease | \(.per_class[0].dice_30pct_decrease * 10000 | round / 100) | - | - |"' "$first"
  for xi in $xis; do row "I_DV on U-Net (ξ = $xi)" "$out/xi-$xi/report.json"; done
  row "I_D on U-Net (ξ = 2)" "$out/d-only/report.json"
  row "I_V on U-Net (ξ = 2)" "$out/v-only/report.json"
} > "$table"

if [ "$augment" = 0 ]; then
  echo -e "\n${#stems[@]} Kvasir-SEG pairs (80/20), ${size}x${size}, U-Net $epochs epochs, attacker $attack_epochs epochs (lr $lr, adversarial weight $adv); $(( $(date +%s) - start )) s in all." >> "$table"
  cat "$table"; exit 0
fi

# Augmenter: attacks of the training images (attacked image + deformed mask) added to the training set.
medseg deform-attack --model "$out/unet.zip" --data "$out/train" --xi "$aug_xi" --epochs "$attack_epochs" --lr "$lr" \
  --adv-weight "$adv" --seed "$seed" --device "$device" --out "$out/aug-attacks" > "$out/aug-attacks.log" 2>&1
mkdir -p "$out/train-aug/images" "$out/train-aug/masks" "$out/test-attacked"
for f in "$out"/train/images/* "$out"/train/masks/*; do ln -s "$(realpath "$f")" "$out/train-aug/$(basename "$(dirname "$f")")/$(basename "$f")"; done
for f in "$out"/aug-attacks/attacked/*; do ln -s "$(realpath "$f")" "$out/train-aug/images/atk_$(basename "$f")"; done
for f in "$out"/aug-attacks/deformed-masks/*; do ln -s "$(realpath "$f")" "$out/train-aug/masks/atk_$(basename "$f")"; done
ln -s "$(realpath "$out/xi-2/attacked")" "$out/test-attacked/images"
ln -s "$(realpath "$out/xi-2/deformed-masks")" "$out/test-attacked/masks"
medseg train --data "$out/train-aug" --val-fraction 0 --size "$size" --epochs "$epochs" --seed "$seed" --device "$device" \
  --out "$out/unet-aug.zip" > "$out/unet-aug.log" 2>&1
{
  echo
  echo "| segmenter | test mDice (%) | mDice (%) on the ξ = 2 attacks of the test images |"
  echo "| --- | ---: | ---: |"
  for m in unet unet-aug; do
    medseg evaluate --model "$out/$m.zip" --data "$out/test" --out "$out/$m-test.json" > /dev/null
    medseg evaluate --model "$out/$m.zip" --data "$out/test-attacked" --out "$out/$m-attacked.json" > /dev/null
    label=$([ "$m" = unet ] && echo "U-Net" || echo "U-Net + deformation pairs (ξ = $aug_xi)")
    echo "| $label | $(jq -r '.mDice * 10000 | round / 100' "$out/$m-test.json") | $(jq -r '.mDice * 10000 | round / 100' "$out/$m-attacked.json") |"
  done
  echo
  echo "${#stems[@]} Kvasir-SEG pairs (80/20), ${size}x${size}, U-Net $epochs epochs, attacker $attack_epochs epochs (lr $lr, adversarial weight $adv); $(( $(date +%s) - start )) s in all."
} >> "$table"
cat "$table"
