#!/usr/bin/env bash
# Paper 004 (Saragih et al., synthetic polyp pairs by diffusion) at CPU scale on Kvasir-SEG: Tables 1–2 (Fréchet
# ResNet-18 distance and MS-SSIM of synthetic sets against the real training images), Table 3 (a U-Net trained on
# synthetic pairs only, tested on real ones) and Table 6 (small real training sets plus r synthetic pairs per real
# image, α = 0.5), written as Markdown to DOC (docs/synthesis-results.md; rows not run yet read "pending"; a hand-written
# section from a "## What the numbers say" heading to the end of DOC is kept when the tables are rewritten).
# Data: the seeded split of build/kvasir-split.py (first TRAIN_PAIRS of its 800 training pairs; 100 validation, 100
# test), everything at SIZE px.
# Generator rows (all RePaint: real images inpainted under their dilated masks, PER_IMAGE per image, `medseg synthesize`):
#   diff              one joint image + mask diffusion model per cluster (CLUSTERS clusters of ResNet-18 features)
#   full-diff         one joint diffusion model on all training pairs
#   styled-diff, full-styled-diff   the same, then styled (`--method styled`: guided reverse steps towards the
#                     original image, Appendix A.1.2).
# Every generator model trains the same number of optimizer steps, TRAIN_STEPS (default EPOCHS epochs of all TRAIN_PAIRS:
# EPOCHS × ⌈TRAIN_PAIRS/BATCH⌉), whatever its cluster's size, as the paper trains each model 110,000 iterations.
# Each generator model is trained once (by the first set's run, seed 1, saved as OUT/gen-{clusters,full}.zip, with
# resume checkpoints) and drawn SETS times with --seed = the set (Tables 1–2's Set 1/2/3). Table 3 trains on the first
# N samples per real image of set 1 (N = 1..PER_IMAGE; 20 % of them held out for best-epoch selection, as the paper's
# 80/20 split), and a Real row on the real training pairs. Table 6 takes the first N of a seeded permutation of the
# training pairs for each N in SMALL_N and adds, with probability ALPHA per real image (seeded by the segmenter seed),
# its first r set-1 samples (r = 1, 2, 3) of T6_ROW (styled-diff when present, else diff); validation: the real split's.
# Segmenters: U-Net, SEG_EPOCHS epochs, over SEEDS; scored by `medseg evaluate` on the 100 real test pairs (mIoU, mDice;
# the paper's "Dice loss" is 1 − mDice). Resumable like build/cdal-table.sh: a finished run (its JSON) is skipped, a
# cut-off training resumes from its checkpoints. Usage: build/synth-table.sh [DATA_DIR] — environment: SIZE (64),
# TRAIN_PAIRS (150), EPOCHS (diffusion, 30), BATCH (8), WIDTH (U-Net base channels of the diffusion model, 32),
# DIFFUSION_STEPS (1000), CLUSTERS (20), PER_IMAGE (3), SETS ("1 2 3"), REPAINT_STEPS (50), JUMP_LENGTH (10),
# JUMP_RESAMPLINGS (5), SEG_EPOCHS (20), SEG_BATCH (8), SEEDS ("1 2 3"), SMALL_N ("16 32 64"), ALPHA (0.5),
# SPLIT_SEED (1), DEVICE (cpu), OUT (runs/synth-table), DOC (docs/synthesis-results.md), TABLES ("1 3 6"),
# QUALITY_FEATURE_SIZE (224, the ResNet-18 input side of Tables 1–2), REPORT_ONLY (0: 1 writes DOC from what OUT holds and runs nothing).
# Quick check: SIZE=16 TRAIN_PAIRS=6 EPOCHS=1 DIFFUSION_STEPS=20 CLUSTERS=2 PER_IMAGE=2 SETS="1 2" REPAINT_STEPS=4
#   JUMP_LENGTH=2 JUMP_RESAMPLINGS=2 SEG_EPOCHS=1 SEEDS=1 SMALL_N=4 QUALITY_FEATURE_SIZE=32 OUT=runs/synth-check
#   DOC=runs/synth-check/table.md build/synth-table.sh
set -euo pipefail
echo 19 > /proc/self/autogroup 2>/dev/null || true
cd "$(dirname "$0")/.."
data=${1:-../shared/data/kvasir-seg}
size=${SIZE:-64}; train_pairs=${TRAIN_PAIRS:-150}; epochs=${EPOCHS:-30}; batch=${BATCH:-8}; width=${WIDTH:-32}
diffusion_steps=${DIFFUSION_STEPS:-1000}; clusters=${CLUSTERS:-20}; per_image=${PER_IMAGE:-3}; sets=${SETS:-"1 2 3"}
repaint_steps=${REPAINT_STEPS:-50}; jump_length=${JUMP_LENGTH:-10}; jump_resamplings=${JUMP_RESAMPLINGS:-5}
seg_epochs=${SEG_EPOCHS:-20}; seg_batch=${SEG_BATCH:-8}; seeds=${SEEDS:-"1 2 3"}; small_n=${SMALL_N:-"16 32 64"}
alpha=${ALPHA:-0.5}; split_seed=${SPLIT_SEED:-1}; device=${DEVICE:-cpu}; out=${OUT:-runs/synth-table}
doc=${DOC:-docs/synthesis-results.md}; tables=${TABLES:-"1 3 6"}; feature_size=${QUALITY_FEATURE_SIZE:-224}
report_only=${REPORT_ONLY:-0}
train_steps=${TRAIN_STEPS:-$(( epochs * ((train_pairs + batch - 1) / batch) ))}
mkdir -p "$out"
medseg="dotnet src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/medseg.dll"
split="$out/split"
styled=1   # the styling stage is in the library (Diffusion/Synthesis/Style*): the styled rows run

if [ "$report_only" != 1 ]; then
dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
python3 build/kvasir-split.py "$data" "$split" "$split_seed" "$train_pairs"
fi
gen_rows="diff full-diff"; [ "$styled" = 1 ] && gen_rows="$gen_rows styled-diff full-styled-diff"
t6_row=diff; [ "$styled" = 1 ] && t6_row=styled-diff
case_has() { case " $tables " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# --- synthetic sets (needed by every table) -------------------------------------------------------------------------
if [ "$report_only" != 1 ]; then
for row in $gen_rows; do
  case "$row" in
    diff) model=clusters; method=repaint; train_opts="--clusters $clusters" ;;
    full-diff) model=full; method=repaint; train_opts="--no-clusters" ;;
    styled-diff) model=clusters; method=styled; train_opts="--clusters $clusters" ;;
    full-styled-diff) model=full; method=styled; train_opts="--no-clusters" ;;
  esac
  for s in $sets; do
    d="$out/$row-set$s"
    if [ -f "$d/quality.json" ]; then echo "$row set $s: done before, skipped"; continue; fi
    if [ -f "$out/gen-$model.zip" ]; then src=(--model "$out/gen-$model.zip")
    else
      # shellcheck disable=SC2206 # the row's options are words
      src=(--size "$size" --train-steps "$train_steps" --batch "$batch" --width "$width" --diffusion-steps "$diffusion_steps" $train_opts
           --checkpoints "$out/gen-$model.ckpt" --save-model "$out/gen-$model.zip")
    fi
    rm -rf "$d.tmp"
    $medseg synthesize --data "$split/train" --method "$method" --per-image "$per_image" --repaint-steps "$repaint_steps" \
      --jump-length "$jump_length" --jump-resamplings "$jump_resamplings" --feature-size "$feature_size" --seed "$s" \
      --device "$device" "${src[@]}" --out "$d.tmp" >> "$out/$row-set$s.log" 2>&1
    mv "$d.tmp" "$d"
    echo "$row set $s: $(python3 -c "import json; d=json.load(open('$d/quality.json')); print(f\"Fréchet ResNet-18 {d['frechet_resnet18']:.2f}, MS-SSIM {d['ms_ssim']:.4f}\")")"
  done
done
if case_has 1 && [ ! -f "$out/real-quality.json" ]; then
  # Table 1's Real row: the real training images against themselves (the paper shuffles them; the order does not matter here).
  $medseg quality --real "$split/train" --generated "$split/train" --size "$size" --feature-size "$feature_size" \
    --device "$device" --out "$out/real-quality.json.tmp" > "$out/real-quality.log" 2>&1
  mv "$out/real-quality.json.tmp" "$out/real-quality.json"
fi
fi

# --- segmenters: train (resumable) and score on the real test pairs -------------------------------------------------
segment() { # name data-dir [train options...]
  local name=$1 dir=$2; shift 2
  if [ -f "$out/seg/$name.json" ]; then echo "$name: done before, skipped"; return; fi
  mkdir -p "$out/seg"
  $medseg train --data "$dir" "$@" --backbone unet --size "$size" --epochs "$seg_epochs" --batch "$seg_batch" --device "$device" \
    --checkpoints "$out/seg/$name.ckpt" --out "$out/seg/$name.zip" >> "$out/seg/$name.train.log" 2>&1
  $medseg evaluate --model "$out/seg/$name.zip" --data "$split/test" --device "$device" --out "$out/seg/$name.json.tmp" > "$out/seg/$name.eval.log" 2>&1
  mv "$out/seg/$name.json.tmp" "$out/seg/$name.json"
  echo "$name: $(python3 -c "import json; d=json.load(open('$out/seg/$name.json')); print(f\"mIoU {d['mIoU']:.4f} mDice {d['mDice']:.4f}\")")"
}

if [ "$report_only" != 1 ] && case_has 3; then
  for s in $seeds; do segment "t3-real-seed$s" "$split/train" --val-fraction 0.2 --seed "$s"; done
  for row in $gen_rows; do
    for n in $(seq 1 "$per_image"); do
      # The first n samples of each real image of set 1 (ID_0 … ID_{n-1}), as symlinks.
      dir="$out/t3-data/$row-$n"
      python3 - "$out/$row-set1" "$dir" "$n" <<'PY'
import os, re, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if os.path.isdir(os.path.join(dst, "masks")): sys.exit(0)
for kind in ("images", "masks"):
    os.makedirs(os.path.join(dst, kind) + ".tmp", exist_ok=True)
    for f in sorted(os.listdir(os.path.join(src, kind))):
        m = re.match(r"(.+)_(\d+)\.png$", f)
        if m and int(m[2]) < n:
            os.symlink(os.path.realpath(os.path.join(src, kind, f)), os.path.join(dst, kind + ".tmp", f))
for kind in ("images", "masks"): os.rename(os.path.join(dst, kind) + ".tmp", os.path.join(dst, kind))
PY
      for s in $seeds; do segment "t3-$row-$n-seed$s" "$dir" --val-fraction 0.2 --seed "$s"; done
    done
  done
fi

if [ "$report_only" != 1 ] && case_has 6; then
  for n in $small_n; do
    for s in $seeds; do
      for r in 0 1 2 3; do
        [ "$r" -gt "$per_image" ] && continue
        if [ "$r" = 0 ]; then name="t6-real-$n-seed$s"; else name="t6-$t6_row-$n-r$r-seed$s"; fi
        dir="$out/t6-data/${name}"
        # N real pairs (the first N of a permutation seeded by SPLIT_SEED) + with probability α per real image its first r samples.
        python3 - "$split/train" "$out/$t6_row-set1" "$dir" "$n" "$r" "$alpha" "$s" "$split_seed" <<'PY'
import os, random, sys
real, synth, dst, n, r, alpha, seed, split_seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
if os.path.isdir(os.path.join(dst, "masks")): sys.exit(0)
images = sorted(os.listdir(os.path.join(real, "images")))
masks = {os.path.splitext(m)[0]: m for m in os.listdir(os.path.join(real, "masks"))}
random.Random(split_seed).shuffle(images)
if n > len(images): sys.exit(f"SMALL_N {n} is more than the {len(images)} training pairs")
pick = sorted(images[:n])
coin = random.Random(f"alpha|{seed}|{n}|{r}")
links = []
for img in pick:
    stem = os.path.splitext(img)[0]
    links += [("images", os.path.join(real, "images", img), img), ("masks", os.path.join(real, "masks", masks[stem]), masks[stem])]
    if r > 0 and coin.random() < alpha:
        for j in range(r):
            f = f"{stem}_{j}.png"
            links += [("images", os.path.join(synth, "images", f), f), ("masks", os.path.join(synth, "masks", f), f)]
for kind in ("images", "masks"): os.makedirs(os.path.join(dst, kind) + ".tmp", exist_ok=True)
for kind, target, name in links: os.symlink(os.path.realpath(target), os.path.join(dst, kind + ".tmp", name))
for kind in ("images", "masks"): os.rename(os.path.join(dst, kind) + ".tmp", os.path.join(dst, kind))
PY
        segment "$name" "$dir" --val "$split/val" --seed "$s"
      done
    done
  done
fi

# --- the report -----------------------------------------------------------------------------------------------------
python3 - "$out" "$doc" "$styled" "$size" "$train_pairs" "$train_steps" "$clusters" "$per_image" "$sets" "$seeds" "$small_n" "$alpha" \
  "$seg_epochs" "$repaint_steps" "$jump_length" "$jump_resamplings" "$t6_row" <<'PY'
import json, os, statistics as st, sys
(out, doc, styled, size, ntrain, train_steps, clusters, per_image, sets, seeds, small_n, alpha, seg_epochs, rsteps, jl, jr, t6_row) = sys.argv[1:18]
styled = styled == "1"; per_image = int(per_image); sets = sets.split(); seeds = seeds.split(); small_n = small_n.split()
def load(p):
    return json.load(open(p)) if os.path.exists(p) else None
names = {"diff": "Diff", "styled-diff": "Styled-Diff", "full-diff": "Full-Diff", "full-styled-diff": "Full-Styled-Diff"}
rows = ["diff", "styled-diff", "full-diff", "full-styled-diff"]
def pending(row): return "pending (no styling stage)" if "styled" in row and not styled else "pending"
L = ["# Paper 004 at CPU scale: synthetic polyp pairs by diffusion (Kvasir-SEG)", "",
     f"Generated by `build/synth-table.sh`. Kvasir-SEG (Jha et al., MMM 2020), seeded split (`build/kvasir-split.py`): {ntrain} "
     f"training pairs, 100 validation, 100 test, all at {size} px. Generators: joint image + mask diffusion (`medseg synthesize`), "
     f"{train_steps} optimizer steps per model (the same for every cluster's model, as the paper's 110,000 iterations each), {clusters} clusters (Diff) or one model (Full-Diff); RePaint with T = {rsteps}, jump length {jl}, "
     f"{jr} resamplings, {per_image} samples per real image. CPU scale: far smaller than the paper's (256 px, 110,000 iterations "
     "per model on a V100); the numbers show the tables' shape, not the paper's values.", "",
     "## Tables 1–2: Fréchet ResNet-18 distance and MS-SSIM against the real training images", "",
     "Fréchet distance of ImageNet ResNet-18 features (not FID: Inception-v3; the values are not comparable with the paper's). "
     "MS-SSIM: mean over pairs within the set (lower = more diverse). Sets: the same generator drawn with seeds " + ", ".join(sets) + ".", "",
     "| data | " + " | ".join(f"Fréchet set {s}" for s in sets) + " | " + " | ".join(f"MS-SSIM set {s}" for s in sets) + " |",
     "| --- |" + " ---: |" * (2 * len(sets))]
rq = load(os.path.join(out, "real-quality.json"))
L.append("| Real | " + (f"{rq['frechet_resnet18']:.3g}" if rq else "pending") + " |" + " |" * (len(sets) - 1)
         + " " + (f"{rq['ms_ssim_real']:.4f}" if rq else "pending") + " |" + " |" * (len(sets) - 1))
for row in rows:
    q = [load(os.path.join(out, f"{row}-set{s}", "quality.json")) for s in sets]
    f = [f"{x['frechet_resnet18']:.2f}" if x else pending(row) for x in q]
    m = [f"{x['ms_ssim']:.4f}" if x else pending(row) for x in q]
    L.append(f"| {names[row]} | " + " | ".join(f + m) + " |")
def seg(prefix):
    r = [load(os.path.join(out, "seg", f"{prefix}-seed{s}.json")) for s in seeds]
    r = [x for x in r if x]
    if not r: return None
    ms = lambda v: f"{st.mean(v):.4f} ± {st.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"
    return len(r), ms([1 - x["mDice"] for x in r]), ms([x["mIoU"] for x in r]), ms([x["mDice"] for x in r])
L += ["", "## Table 3: U-Net trained on synthetic pairs only, tested on the real test pairs", "",
      f"Type-N: N synthetic pairs per real training image (N × {ntrain} pairs), 20 % held out for best-epoch selection. "
      f"U-Net, {seg_epochs} epochs, seeds {', '.join(seeds)} (mean ± sd). Dice loss = 1 − mDice.", "",
      "| data | seeds | Dice loss | mIoU | mDice |", "| --- | ---: | ---: | ---: | ---: |"]
def segrow(label, prefix, row=""):
    r = seg(prefix)
    L.append(f"| {label} | " + (" | ".join(str(x) for x in r) if r else f"0 | {pending(row)} | | ") + " |")
segrow("Real", "t3-real")
for row in rows:
    for n in range(1, per_image + 1): segrow(f"{names[row]}-{n}", f"t3-{row}-{n}", row)
L += ["", f"## Table 6: small real training sets + r synthetic pairs per real image (α = {alpha})", "",
      f"N real pairs (a seeded subset of the training pairs); with probability α each real image's first r {names[t6_row]} "
      f"samples are added. Validation: the real split's 100 pairs. U-Net, {seg_epochs} epochs, seeds {', '.join(seeds)}. Dice loss = 1 − mDice.", "",
      "| N | data | r | seeds | Dice loss | mIoU | mDice |", "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
for n in small_n:
    r = seg(f"t6-real-{n}")
    L.append(f"| {n} | Real | 0 | " + (" | ".join(str(x) for x in r) if r else "0 | pending | | ") + " |")
    for k in range(1, min(3, per_image) + 1):
        r = seg(f"t6-{t6_row}-{n}-r{k}")
        L.append(f"| {n} | {names[t6_row]} | {k} | " + (" | ".join(str(x) for x in r) if r else f"0 | {pending(t6_row)} | | ") + " |")
L += ["", "Not reproduced: the GAN rows (SinGAN-Seg's published images are not available here), Tables 4–5 (full-size "
      "augmentation), Table 7 (expert review); the paper's UNet++ with an se_resnext50 encoder is a plain U-Net here."]
# Hand-written reading of the numbers (from a "## What the numbers say" heading on) survives a rewrite of the tables.
kept = ""
if os.path.exists(doc):
    old = open(doc).read()
    at = old.find("\n## What the numbers say")
    if at >= 0: kept = old[at:]
os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
open(doc, "w").write("\n".join(L) + "\n" + kept)
print("\n".join(L))
PY
