#!/usr/bin/env bash
# Mixed precision against float32 on Kvasir-SEG: the U-Net trained with `medseg train --precision float32|bfloat16`
# for several seeds on one fixed split (800 pairs to train, 10% of them held out for validation and best-epoch
# selection, 200 to test), each scored with `medseg evaluate` on the 200 test pairs. Prints a Markdown table
# (also runs/precision-table/table.md) with per-seed test mIoU/mDice, train time, and the mean ± spread per precision.
# Usage: build/precision-table.sh [DATA_DIR] — environment: SIZE (64), EPOCHS (10), SEEDS ("1 2 3"),
# PRECISIONS ("float32 bfloat16"), BACKBONE (unet), BATCH (16), TRAIN_PAIRS (all 800; fewer for a quicker run),
# OUT (runs/precision-table).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/kvasir-seg}
size=${SIZE:-64}; epochs=${EPOCHS:-10}; seeds=${SEEDS:-"1 2 3"}; precisions=${PRECISIONS:-"float32 bfloat16"}
backbone=${BACKBONE:-unet}; batch=${BATCH:-16}; train_pairs=${TRAIN_PAIRS:-800}; out=${OUT:-runs/precision-table}
mkdir -p "$out"
bash build/setup.sh >/dev/null
dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
medseg="dotnet src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/medseg.dll"
# A fixed split by sorted file name: every 5th pair is a test pair (200 of 1000), the rest train (links, no copies).
split="$out/split"
if [ ! -d "$split/test/images" ]; then
  python3 - "$data" "$split" "$train_pairs" <<'PY'
import os, sys
data, split, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
ntrain = 0
masks = {os.path.splitext(m)[0]: m for m in os.listdir(os.path.join(data, "masks"))}
for i, img in enumerate(sorted(os.listdir(os.path.join(data, "images")))):
    part = "test" if i % 5 == 4 else "train"
    if part == "train":
        ntrain += 1
        if ntrain > limit: continue
    stem = os.path.splitext(img)[0]
    for kind, name in (("images", img), ("masks", masks[stem])):
        d = os.path.join(split, part, kind); os.makedirs(d, exist_ok=True)
        os.symlink(os.path.realpath(os.path.join(data, kind, name)), os.path.join(d, name))
PY
fi
table="$out/table.md"
echo "| precision | seed | test mIoU | test mDice | train time |" > "$table"
echo "| --- | ---: | ---: | ---: | ---: |" >> "$table"
for p in $precisions; do
  for s in $seeds; do
    name="$backbone-$p-seed$s"
    start=$(date +%s)
    $medseg train --data "$split/train" --backbone "$backbone" --size "$size" --epochs "$epochs" --batch "$batch" \
      --seed "$s" --precision "$p" --out "$out/$name.zip" > "$out/$name.train.log" 2>&1
    secs=$(( $(date +%s) - start ))
    $medseg evaluate --model "$out/$name.zip" --data "$split/test" --out "$out/$name.json" > "$out/$name.eval.log" 2>&1
    read -r miou mdice < <(python3 -c "import json,sys; d=json.load(open('$out/$name.json')); print(d['mIoU'], d['mDice'])")
    printf '| %s | %s | %.4f | %.4f | %d s |\n' "$p" "$s" "$miou" "$mdice" "$secs" >> "$table"
    echo "$name: mIoU $miou mDice $mdice ($secs s)"
  done
done
python3 - "$table" <<'PY' >> "$table"
import sys, statistics as st
rows = [l.split('|')[1:-1] for l in open(sys.argv[1]) if l.startswith('| ') and not l.startswith('| precision') and not l.startswith('| ---')]
print()
print("| precision | runs | mDice mean | mDice min–max | mIoU mean |")
print("| --- | ---: | ---: | ---: | ---: |")
for p in dict.fromkeys(r[0].strip() for r in rows):
    d = [float(r[3]) for r in rows if r[0].strip() == p]; i = [float(r[2]) for r in rows if r[0].strip() == p]
    print(f"| {p} | {len(d)} | {st.mean(d):.4f} | {min(d):.4f}–{max(d):.4f} | {st.mean(i):.4f} |")
PY
cat "$table"
