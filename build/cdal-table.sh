#!/usr/bin/env bash
# cDAL (paper 003) against U-Net and U-Net++ on Kvasir-SEG, with Table 1's ablations: every row is trained with
# `medseg train` on the seeded 800/100/100 split (build/kvasir-split.py; validation for best-epoch selection) at SIZE
# px for EPOCHS epochs and scored with `medseg evaluate` on the 100 test pairs (per-image mIoU/mDice at 0.5).
# Rows (name | train options):
#   unet, unetpp            the segmentation networks (plain encoders, from scratch)
#   cdal                    the full model (T = 2, 5 samples, latent 100, attention at side SIZE/8)
#   cdal-no-latent          Table 1 "w/o latent"
#   cdal-no-attention       Table 1 "w/o attention"
#   cdal-att-S              attention scale S for each S in ATTENTION_SCALES (Table 1's 16/32/64 are sides of 256² maps:
#                           the same fractions of SIZE are SIZE/16, SIZE/8, SIZE/4; the SIZE/8 row is cdal's seed 1)
# The main rows (unet, unetpp, cdal) run over SEEDS, the ablations over ABLATION_SEEDS. Inference time per image is the
# wall time of `medseg evaluate` on the 100 test images divided by 100 (it includes loading the model and the files,
# the same for every row). Background-friendly and resumable like build/imagenet-table.sh: a finished run (its JSON)
# is skipped; a run cut off resumes from its last epoch (--checkpoints); train time is summed from the epochs' own
# seconds. Usage: build/cdal-table.sh [DATA_DIR] — environment: SIZE (128), EPOCHS (30), BATCH (8), SEEDS ("1 2 3"),
# ABLATION_SEEDS ("1"), ATTENTION_SCALES (SIZE/16, SIZE/8, SIZE/4), ROWS (all), SPLIT_SEED (1), TRAIN_PAIRS (800), DEVICE (cpu),
# OUT (runs/cdal-table), REPORT_ONLY (0; 1 rebuilds OUT/table.md from the finished runs and trains nothing).
# The report adds cDAL against U-Net and U-Net++, and each ablation against cDAL, paired on the test images (per-image Dice averaged over the seeds
# both ran; 95 % bootstrap interval of the mean difference). Quick check: SIZE=32 EPOCHS=1 SEEDS=1 ATTENTION_SCALES=8 TRAIN_PAIRS=16 OUT=runs/cdal-check build/cdal-table.sh
set -euo pipefail
# A background job started with setsid gets its own scheduler autogroup, where `nice` alone does not yield to the
# foreground: lower the group's weight too, so builds and tests keep the CPU (best effort; Linux only).
echo 19 > /proc/self/autogroup 2>/dev/null || true
cd "$(dirname "$0")/.."
data=${1:-../shared/data/kvasir-seg}
size=${SIZE:-128}; epochs=${EPOCHS:-30}; batch=${BATCH:-8}; seeds=${SEEDS:-"1 2 3"}; ablation_seeds=${ABLATION_SEEDS:-"1"}
scales=${ATTENTION_SCALES:-"$((size / 16)) $((size / 8)) $((size / 4))"}; split_seed=${SPLIT_SEED:-1}; train_pairs=${TRAIN_PAIRS:-800}; device=${DEVICE:-cpu}
out=${OUT:-runs/cdal-table}
report_only=${REPORT_ONLY:-0}
mkdir -p "$out"
if [ "$report_only" != 1 ]; then
dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
medseg="nice -n 19 dotnet src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/medseg.dll"
split="$out/split"
python3 build/kvasir-split.py "$data" "$split" "$split_seed" "$train_pairs"

declare -A opts=(
  [unet]="--backbone unet" [unetpp]="--backbone unetpp" [cdal]="--backbone cdal --attention-scale $((size / 8))"
  [cdal-no-latent]="--backbone cdal --attention-scale $((size / 8)) --no-latent"
  [cdal-no-attention]="--backbone cdal --attention-scale $((size / 8)) --no-attention")
order="unet unetpp cdal cdal-no-latent cdal-no-attention"
# The full model's own scale (SIZE/8) is its row "cdal" (seed 1 is that ablation row): not trained twice.
for s in $scales; do
  [ "$s" = $((size / 8)) ] && continue
  opts[cdal-att-$s]="--backbone cdal --attention-scale $s"; order="$order cdal-att-$s"
done
rows=${ROWS:-$order}

for row in $rows; do
  case "$row" in unet|unetpp|cdal) run_seeds=$seeds ;; *) run_seeds=$ablation_seeds ;; esac
  for s in $run_seeds; do
    name="$row-seed$s"
    if [ -f "$out/$name.json" ]; then echo "$name: done before, skipped"; continue; fi
    # shellcheck disable=SC2086 # the row's options are words
    $medseg train --data "$split/train" --val "$split/val" ${opts[$row]} --size "$size" --epochs "$epochs" --batch "$batch" \
      --seed "$s" --device "$device" --checkpoints "$out/$name.ckpt" --out "$out/$name.zip" >> "$out/$name.train.log" 2>&1
    python3 -c "import re,sys; e={}; [e.__setitem__(m[1], float(m[2])) for m in re.finditer(r'epoch (\d+): .*?\(([\d.]+) s\)', open(sys.argv[1]).read())]; print(round(sum(e.values())))" \
      "$out/$name.train.log" > "$out/$name.seconds"
    start=$(date +%s.%N)
    $medseg evaluate --model "$out/$name.zip" --data "$split/test" --device "$device" --out "$out/$name.json.tmp" > "$out/$name.eval.log" 2>&1
    python3 -c "import sys; print(f'{(float(sys.argv[2]) - float(sys.argv[1])) / 100:.4f}')" "$start" "$(date +%s.%N)" > "$out/$name.infer"
    mv "$out/$name.json.tmp" "$out/$name.json"
    echo "$name: $(python3 -c "import json; d=json.load(open('$out/$name.json')); print(f\"mIoU {d['mIoU']:.4f} mDice {d['mDice']:.4f}\")")"
  done
done

fi

python3 - "$out" "$size" "$epochs" "$train_pairs" <<'PY'
import glob, json, os, re, statistics as st, sys
out, size, epochs, ntrain = sys.argv[1:5]
rows = []
for path in sorted(glob.glob(os.path.join(out, "*-seed*.json"))):
    m = re.match(r"(.+)-seed(\d+)\.json$", os.path.basename(path))
    if not m: continue
    d = json.load(open(path))
    read = lambda ext, f: f(open(path[:-5] + ext).read()) if os.path.exists(path[:-5] + ext) else 0
    rows.append((m[1], int(m[2]), d["mIoU"], d["mDice"], read(".seconds", int), read(".infer", float)))
with open(os.path.join(out, "results.tsv"), "w") as f:
    f.write("row\tseed\tmIoU\tmDice\ttrain_seconds\tinference_seconds_per_image\n")
    for r in rows: f.write("\t".join(str(x) for x in r) + "\n")
def ms(v): return f"{st.mean(v):.4f} ± {st.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"
lines = [f"Kvasir-SEG, {ntrain} training pairs, 100 validation, 100 test (seeded split), {size} px, {epochs} epochs, CPU.",
         "", "| row | seeds | test mIoU | test mDice | train time (mean) | inference s/image |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
for key in dict.fromkeys(r[0] for r in rows):
    g = [r for r in rows if r[0] == key]
    t = st.mean(r[4] for r in g)
    lines.append(f"| {key} | {len(g)} | {ms([r[2] for r in g])} | {ms([r[3] for r in g])} | {int(t // 60)} min {int(t % 60)} s | {st.mean(r[5] for r in g):.3f} |")
# cDAL against each segmentation network, and each ablation against cDAL (its seeds), on the same test images: per image, the mean Dice over the seeds both rows
# ran; the mean difference with a 95 % paired bootstrap interval over the images (10,000 resamples, seeded).
import random
def per_image(row, seeds):
    runs = [json.load(open(os.path.join(out, f"{row}-seed{s}.json"))) for s in seeds]
    ids = [im["id"] for im in runs[0]["images"]]
    return ids, [st.mean(r["images"][i]["mean"]["dice"] for r in runs) for i in range(len(ids))]
seeds_of = {}
for r in rows: seeds_of.setdefault(r[0], set()).add(r[1])
comparisons = []
ablations = [k for k in seeds_of if k.startswith("cdal-")]
for first, other in [("cdal", "unet"), ("cdal", "unetpp")] + [(a, "cdal") for a in sorted(ablations)]:
    common = sorted(seeds_of.get(first, set()) & seeds_of.get(other, set()))
    if not common: continue
    ids_c, dc = per_image(first, common)
    ids_o, do = per_image(other, common)
    if ids_c != ids_o: continue
    diff = [a - b for a, b in zip(dc, do)]
    rng = random.Random(1)
    boots = sorted(st.mean(rng.choices(diff, k=len(diff))) for _ in range(10000))
    lo, hi = boots[249], boots[9749]
    verdict = f"{first} better" if lo > 0 else f"{other} better" if hi < 0 else "no difference beyond the noise"
    comparisons.append(f"| {first} − {other} | {len(common)} | {st.mean(diff):+.4f} | [{lo:+.4f}, {hi:+.4f}] | {verdict} |")
if comparisons:
    lines += ["", "Paired on the test images (per image: Dice averaged over the seeds both rows ran; 95 % bootstrap interval of the mean difference; one seed cannot show the training noise between runs, only the test images'):",
              "", "| comparison | seeds | mean Dice difference | 95 % interval | reading |", "| --- | ---: | ---: | --- | --- |"] + comparisons
lines += ["", f"The attention-scale ablation's {int(size) // 8}² row is the cdal row itself (its seed 1): cdal attends at SIZE/8 = {int(size) // 8}."]
open(os.path.join(out, "table.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
