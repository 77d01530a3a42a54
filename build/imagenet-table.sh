#!/usr/bin/env bash
# ImageNet against scratch encoders on Kvasir-SEG: every backbone (unet, unetpp, linknet, deeplabv3plus, all with a
# ResNet-18 encoder: `medseg train --encoder resnet18`) × {scratch, ImageNet} (`--encoder-weights none|imagenet`) ×
# {No-Aug, Basic} (`--augment none|basic`), trained with `medseg train` on a seeded 800/100/100 split (train / validation
# for best-epoch selection / test) and scored with `medseg evaluate` on the 100 test pairs (per-image mIoU/mDice at 0.5).
# The U-Net rows run over several seeds (SEEDS), the others over OTHER_SEEDS. Note: the package's ImageNet ResNet-18 has
# three blocks in layer4 ([2,2,2,3]); the scratch encoder is torchvision's resnet18 ([2,2,2,2]).
# RECORDS (a folder, e.g. docs/runs/imagenet-table, committed): each finished run's metrics JSON, train seconds and the
# commit it ran at are copied there too (the JSON last), a run with a record there is not run again, and the table
# reads both folders (so the table survives the machine: a later session on a new machine goes on from the records).
# Background-friendly: each run writes its own log and metrics JSON under OUT; a run whose JSON exists is not run again,
# and a run cut off mid-way resumes from its last finished epoch (`medseg train --checkpoints OUT/NAME.ckpt`), so
# re-running the script after an interruption (or in a later session) continues where it stopped. Train seconds add up
# over the sessions a run took. PRECISION (float32) is passed to `--precision` (bfloat16 halves the time on this CPU). The table (OUT/table.md) is rebuilt from the JSONs at the end,
# with per-row mean ± sd over seeds and the mean train time, then paired differences on the same test images
# (ImageNet − scratch, flips − none; per-image Dice, 95 % paired bootstrap interval); OUT/results.tsv has every run.
# Usage: build/imagenet-table.sh [DATA_DIR] — environment: SIZE (128), EPOCHS (30), BATCH (16), SEEDS ("1 2 3"),
# OTHER_SEEDS ("1"), RECORDS (see above), BACKBONES ("unet unetpp linknet deeplabv3plus"), WEIGHTS ("none imagenet"),
# AUGMENTS ("none basic"),
# SPLIT_SEED (1), TRAIN_PAIRS (800; fewer for a quick check), DEVICE (cpu), OUT (runs/imagenet-table), MODELS (OUT: where the
# models and checkpoints go), MEDSEG_BIN (a folder with a built medseg.dll: no build), TABLE_ONLY (1: only rebuild the
# table from OUT's JSONs), DEVICE_NAME (the device as the table's caption names it; default DEVICE).
# build/parallel-tables.sh runs these runs (one call per run, sharing OUT) as parallel jobs on one GPU.
# Quick check: SIZE=32 EPOCHS=1 BACKBONES=unet SEEDS=1 TRAIN_PAIRS=64 OUT=runs/imagenet-table-check build/imagenet-table.sh
# Long run in the background: nohup build/imagenet-table.sh > runs/imagenet-table.log 2>&1 &
set -euo pipefail
# A background job started with setsid gets its own scheduler autogroup, where `nice` alone does not yield to the
# foreground: lower the group's weight too, so builds and tests keep the CPU (best effort; Linux only).
echo 19 > /proc/self/autogroup 2>/dev/null || true
cd "$(dirname "$0")/.."
data=${1:-../shared/data/kvasir-seg}
size=${SIZE:-128}; epochs=${EPOCHS:-30}; batch=${BATCH:-16}; seeds=${SEEDS:-"1 2 3"}; other_seeds=${OTHER_SEEDS:-"1"}
backbones=${BACKBONES:-"unet unetpp linknet deeplabv3plus"}; weights=${WEIGHTS:-"none imagenet"}; augments=${AUGMENTS:-"none basic"}
split_seed=${SPLIT_SEED:-1}; train_pairs=${TRAIN_PAIRS:-800}; device=${DEVICE:-cpu}; out=${OUT:-runs/imagenet-table}
precision=${PRECISION:-float32}
models=${MODELS:-$out}; records=${RECORDS:-}
mkdir -p "$out" "$models"; [ -z "$records" ] || mkdir -p "$records"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "${MEDSEG_BIN:-}" ]; then
  medseg="nice -n 19 dotnet $MEDSEG_BIN/medseg.dll"
elif [ "${TABLE_ONLY:-0}" != 1 ]; then
  dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
  medseg="nice -n 19 dotnet src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/medseg.dll"
fi

# The seeded split: pairs sorted by name, shuffled with SPLIT_SEED; 800 train, 100 validation, 100 test (symlinks).
split="$out/split"
[ "${TABLE_ONLY:-0}" = 1 ] || python3 build/kvasir-split.py "$data" "$split" "$split_seed" "$train_pairs"

[ "${TABLE_ONLY:-0}" = 1 ] || for b in $backbones; do
  if [ "$b" = unet ]; then run_seeds=$seeds; else run_seeds=$other_seeds; fi
  for w in $weights; do
    for a in $augments; do
      for s in $run_seeds; do
        name="$b-$w-$a-seed$s"
        if [ -f "$out/$name.json" ] || { [ -n "$records" ] && [ -f "$records/$name.json" ]; }; then echo "$name: done before, skipped"; continue; fi
        $medseg train --data "$split/train" --val "$split/val" --backbone "$b" --encoder resnet18 --encoder-weights "$w" \
          --augment "$a" --size "$size" --epochs "$epochs" --batch "$batch" --seed "$s" --device "$device" \
          --precision "$precision" --checkpoints "$models/$name.ckpt" --out "$models/$name.zip" >> "$out/$name.train.log" 2>&1
        # Train time over every session the run took: the epochs' own seconds in its log (the last line per epoch).
        secs=$(python3 -c "import re,sys; e={}; [e.__setitem__(m[1], float(m[2])) for m in re.finditer(r'epoch (\d+): loss.*?\(([\d.]+) s\)', open(sys.argv[1]).read())]; print(round(sum(e.values())))" "$out/$name.train.log")
        echo "$secs" > "$out/$name.seconds"
        $medseg evaluate --model "$models/$name.zip" --data "$split/test" --device "$device" --out "$out/$name.json.tmp" > "$out/$name.eval.log" 2>&1
        mv "$out/$name.json.tmp" "$out/$name.json"
        echo "$commit" > "$out/$name.commit"
        if [ -n "$records" ]; then
          for ext in seconds commit json; do cp "$out/$name.$ext" "$records/$name.$ext.tmp" && mv "$records/$name.$ext.tmp" "$records/$name.$ext"; done
        fi
        echo "$name: $(python3 -c "import json; d=json.load(open('$out/$name.json')); print(f\"mIoU {d['mIoU']:.4f} mDice {d['mDice']:.4f}\")") ($secs s)"
      done
    done
  done
done

python3 - "$out" "$size" "$epochs" "$train_pairs" "${DEVICE_NAME:-$device}" "$records" <<'PY'
import glob, json, os, re, statistics as st, sys
out, size, epochs, ntrain, device, records = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
rows = []
paths = {os.path.basename(p): p for folder in ([records] if records else []) + [out] for p in glob.glob(os.path.join(folder, "*-seed*.json"))}
for path in sorted(paths.values()):
    m = re.match(r"(.+)-(none|imagenet)-(\w+)-seed(\d+)\.json$", os.path.basename(path))
    if not m: continue
    d = json.load(open(path))
    secs_file = path[:-5] + ".seconds"
    secs = int(open(secs_file).read()) if os.path.exists(secs_file) else 0
    commit_file = path[:-5] + ".commit"
    commit = open(commit_file).read().strip() if os.path.exists(commit_file) else "unknown"
    rows.append((m[1], m[2], m[3], int(m[4]), d["mIoU"], d["mDice"], secs, commit))
with open(os.path.join(out, "results.tsv"), "w") as f:
    f.write("backbone\tweights\taugment\tseed\tmIoU\tmDice\ttrain_seconds\tcommit\n")
    for r in rows: f.write("\t".join(str(x) for x in r) + "\n")
def ms(v): return f"{st.mean(v):.4f} ± {st.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"
lines = [f"Kvasir-SEG, {ntrain} training pairs, 100 validation, 100 test (seeded split), {size} px, {epochs} epochs, on {device}.",
         "", "| backbone | encoder weights | augmentation | seeds | test mIoU | test mDice | train time (mean) |",
         "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
names = {"none": "scratch", "imagenet": "ImageNet"}
order = ({"unet": 0, "unetpp": 1, "linknet": 2, "deeplabv3plus": 3}, {"none": 0, "imagenet": 1}, {"none": 0, "basic": 1})
for key in sorted(dict.fromkeys((r[0], r[1], r[2]) for r in rows), key=lambda k: tuple(o.get(x, 9) for o, x in zip(order, k)) + k):
    g = [r for r in rows if (r[0], r[1], r[2]) == key]
    t = st.mean(r[6] for r in g)
    lines.append(f"| {key[0]} | {names[key[1]]} | {key[2]} | {len(g)} | {ms([r[4] for r in g])} | {ms([r[5] for r in g])} | {int(t // 60)} min {int(t % 60)} s |")
# Paired differences on the same test images (same seed and split): ImageNet − scratch per backbone and augmentation,
# and flips − none per backbone and weights. Per-image Dice from the records' "images"; 95 % interval from a paired
# bootstrap over the images (2000 resamples, fixed seed); "beyond the noise" when it excludes 0.
import random
def per_image(path):
    return {im["id"]: im["mean"]["dice"] for im in json.load(open(path))["images"]}
def paired(a, b):
    ids = sorted(set(a) & set(b))
    d = [a[i] - b[i] for i in ids]
    rng = random.Random(0)
    boots = sorted(sum(d[rng.randrange(len(d))] for _ in d) / len(d) for _ in range(2000))
    return sum(d) / len(d), boots[49], boots[1949], len(d)
runs = {(m[1], m[2], m[3], int(m[4])): p for p in paths.values()
        for m in [re.match(r"(.+)-(none|imagenet)-(\w+)-seed(\d+)\.json$", os.path.basename(p))] if m}
diffs = []
for (b, w, a, s), p in sorted(runs.items()):
    if w == "imagenet" and (b, "none", a, s) in runs:
        diffs.append((f"{b}, {a}, seed {s}", "ImageNet − scratch", paired(per_image(p), per_image(runs[(b, "none", a, s)]))))
for (b, w, a, s), p in sorted(runs.items()):
    if a == "basic" and (b, w, "none", s) in runs:
        diffs.append((f"{b}, {names[w]}, seed {s}", "flips − none", paired(per_image(p), per_image(runs[(b, w, "none", s)]))))
if diffs:
    lines += ["", "Paired differences in test Dice on the same 100 images (mean over images; 95 % paired bootstrap interval over the images: the spread between training seeds is not in it):", "",
              "| runs | difference | mean Δ mDice | 95 % interval | beyond the noise |", "| --- | --- | ---: | ---: | --- |"]
    for key, what, (m, lo, hi, n) in diffs:
        lines.append(f"| {key} | {what} | {m:+.4f} | {lo:+.4f} … {hi:+.4f} | {'yes' if lo > 0 or hi < 0 else 'no'} |")
open(os.path.join(out, "table.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
