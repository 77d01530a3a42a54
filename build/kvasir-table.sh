#!/usr/bin/env bash
# README's results table: every backbone, without augmentation and with "Basic" (random flips), trained on the full
# Kvasir-SEG (../shared/data/kvasir-seg: 1000 pairs, 80/10/10 split by seed) with examples/PolypSegmentation, and
# evaluated on the held-out test split (per-image mIoU/mDice at threshold 0.5, the papers' convention).
# Usage: build/kvasir-table.sh [DATA_DIR] — environment: SIZE (64), EPOCHS (10), SEED (1), BACKBONES, AUGMENTS, DEVICE (cpu).
# Writes runs/kvasir-table/<backbone>-<augment>/ and prints a Markdown table (also saved as runs/kvasir-table/table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/kvasir-seg}
size=${SIZE:-64}; epochs=${EPOCHS:-10}; seed=${SEED:-1}; device=${DEVICE:-cpu}
backbones=${BACKBONES:-"unet unetpp linknet deeplabv3plus"}
augments=${AUGMENTS:-"none basic"}
out=${OUT:-runs/kvasir-table}
mkdir -p "$out"
if [ -n "${POLYP_BIN:-}" ]; then bin=$POLYP_BIN/PolypSegmentation.dll
else
  bash build/setup.sh >/dev/null
  dotnet build examples/PolypSegmentation -c Release --nologo -v q >/dev/null
  bin=examples/PolypSegmentation/bin/Release/net10.0/linux-x64/PolypSegmentation.dll
fi
table="$out/table.md"
{
  echo "| backbone | augmentation | mIoU | mDice | best epoch | train time |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
} > "$table"
for b in $backbones; do
  for a in $augments; do
    name="$b-$a"
    start=$(date +%s)
    dotnet "$bin" --data "$data" --backbone "$b" --augment "$a" --size "$size" --epochs "$epochs" --seed "$seed" \
      --device "$device" --out "$out" --name "$name" > "$out/$name.log" 2>&1
    secs=$(( $(date +%s) - start ))
    line=$(grep '^test mIoU' "$out/$name.log")
    miou=$(awk '{print $3}' <<<"$line"); mdice=$(awk '{print $5}' <<<"$line")
    best=$(sed -E 's/.*best validation epoch ([0-9]+).*/\1/' <<<"$line")
    echo "| $b | $a | $miou | $mdice | $best | $((secs / 60)) min $((secs % 60)) s |" >> "$table"
    echo "$name: mIoU $miou mDice $mdice ($secs s)"
  done
done
cat "$table"
