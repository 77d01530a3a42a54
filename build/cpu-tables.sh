#!/usr/bin/env bash
# Both result tables on the CPU, one run after another, resumable across sessions: DASP's Table 2 ablation with paper
# 001's robustness table (build/dasp-table.sh with the shipped generators and the ImageNet encoder, SEEDS training seeds)
# and the ImageNet table (build/imagenet-table.sh). For a machine without a GPU, where the tables take many hours
# (build/parallel-tables.sh is the GPU way: all runs side by side within minutes).
#
# Resuming: an ImageNet run whose metrics exist is skipped and one cut off mid-way resumes from its last finished
# epoch; a DASP method runs as one process over the seeds it still lacks (its drawn pairs are made once per process),
# each process in its own part folder (OUT/dasp/METHOD-partN) whose runs.json grows with every finished row, so a cut
# process keeps the seeds it finished and the next call runs only the others. Each method trains from its own seed, so
# the parts join into exactly what one run over all methods and seeds reports (`medseg dasp-summary`).
# Stop it with `kill -- -PGID` (or end the session) and call it again to continue; the tables are rebuilt from what
# has finished at the end of every call, and by TABLES_ONLY=1. With DEADLINE (when the session ends), a DASP method runs
# one seed per process and starts no seed that would not finish before then (its time estimated from the method's
# finished seeds, else DASP_SEED_MINUTES, default 40), and starts no ImageNet run that would not finish (its time from
# the backbone's finished runs, else IMAGENET_RUN_MINUTES, default 40): the work goes on with the next items in the
# order. A session's machine may be gone by the next one: each finished ImageNet run is also recorded in
# IMAGENET_RECORDS (default docs/runs/imagenet-table, to commit), which later calls count as done and the table reads.
#
# Usage: build/cpu-tables.sh OUT
# Environment: KVASIR (../shared/data/kvasir-seg: the 1000 original pairs, for the ImageNet table), DASP_DATA (the same
#   pairs at 128 × 128 as the shipped generators were trained on: RUN/all-128 of build/train-generators.sh; default
#   KVASIR), GENERATORS (data/models/kvasir-64-generators.zip), ORDER (the order of the work: "imagenet:unet:1"
#   items and "dasp:METHOD" items; default below), SEEDS ("1 2 3": DASP's seeds and the ImageNet U-Net rows' seeds),
#   OTHER_SEEDS ("1": the other backbones), PRECISION (bfloat16: the ImageNet runs' --precision; DASP trains in float32),
#   MEDSEG_BIN (a folder with a built medseg.dll; default: build it here and copy it to OUT/bin), DRY_RUN (1: print
#   what is left, in order), TABLES_ONLY (1: only rebuild the tables), DEADLINE (a time `date -d` reads: see above),
#   DASP_SEED_MINUTES (40), IMAGENET_RUN_MINUTES (40), IMAGENET_RECORDS (docs/runs/imagenet-table). The other
#   settings are the two scripts' defaults (ImageNet: 128 px, 800 training pairs, 30 epochs; DASP: 64 px, 200 pairs, 15 epochs, attacks every 5).
# Writes OUT/imagenet/table.md, OUT/dasp/summary/seeds.md (+ seeds.json, runs.json; each method against No-Aug),
# OUT/dasp/summary-vs-B/seeds.md (against B = generated, diffpgd, pgd, sdedit, fgsm, once B has rows) and OUT/progress.log.
set -euo pipefail
echo 19 > /proc/self/autogroup 2>/dev/null || true   # a background job: let the foreground have the CPU first
cd "$(dirname "$0")/.."
out=$(mkdir -p "$1" && realpath "$1")
# The inputs, which only the runs need (TABLES_ONLY rebuilds the tables from OUT alone).
need() {   # NAME PATH: PATH's absolute form, or a clear error naming the variable
  if [ "${TABLES_ONLY:-0}" = 1 ]; then echo "$2"; return; fi
  [ -e "$2" ] || { echo "cpu-tables.sh: $1: no such file or folder: $2 (set $1)" >&2; exit 1; }
  realpath "$2"
}
kvasir=$(need KVASIR "${KVASIR:-../shared/data/kvasir-seg}"); dasp_data=$(need DASP_DATA "${DASP_DATA:-$kvasir}")
generators=$(need GENERATORS "${GENERATORS:-data/models/kvasir-64-generators.zip}")
seeds=${SEEDS:-"1 2 3"}; other_seeds=${OTHER_SEEDS:-"1"}; precision=${PRECISION:-bfloat16}
mkdir -p "${IMAGENET_RECORDS:-docs/runs/imagenet-table}"; records=$(realpath "${IMAGENET_RECORDS:-docs/runs/imagenet-table}")
deadline=""; [ -z "${DEADLINE:-}" ] || deadline=$(date -d "$DEADLINE" +%s) || { echo "cpu-tables.sh: DEADLINE='$DEADLINE' is not a time" >&2; exit 1; }
# The DASP rows are complete (docs/results.md, 2026-12-05; their run files were not kept): the default is the ImageNet
# table's runs, whose records (IMAGENET_RECORDS) say what is done. Add "dasp:METHOD" items to ORDER to run DASP's again
# (noaug basic generated dasp diffpgd pgd sdedit fgsm ifgsm).
default_order="imagenet:linknet imagenet:deeplabv3plus imagenet:unet:imagenet:1 imagenet:unet:none:1 imagenet:unetpp
  imagenet:unet:imagenet:2 imagenet:unet:none:2 imagenet:unet:imagenet:3 imagenet:unet:none:3"
order=${ORDER:-$default_order}
log() { echo "[$(date -u +%FT%TZ)] $*" | tee -a "$out/progress.log"; }

bin=$out/bin; [ -z "${MEDSEG_BIN:-}" ] || bin=$(realpath "$MEDSEG_BIN")
if [ "${TABLES_ONLY:-0}" != 1 ] && [ "${DRY_RUN:-0}" != 1 ]; then
  if [ -z "${MEDSEG_BIN:-}" ]; then
    bash build/setup.sh >/dev/null
    dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
    rm -rf "$out/bin"; mkdir -p "$out/bin"; cp -r src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/. "$out/bin/"
  fi
fi

# The DASP seeds a method still lacks: those without its row in any part's runs.json.
dasp_missing() {
  python3 - "$out/dasp" "$1" "$seeds" <<'PY'
import glob, json, sys
folder, method, seeds = sys.argv[1], sys.argv[2], sys.argv[3].split()
done = set()
for path in glob.glob(f"{folder}/{method}-part*/runs.json"):
    for run in json.load(open(path)):
        if any(r["method"] == method for r in run["rows"]): done.add(str(run["seed"]))
print(",".join(s for s in seeds if s not in done))
PY
}
# Seconds one more ImageNet-table run of a backbone is expected to take: its slowest finished run's train time with a
# margin (and the evaluation), else IMAGENET_RUN_MINUTES.
imagenet_run_seconds() {
  python3 - "$records" "$out/imagenet" "$1" "${IMAGENET_RUN_MINUTES:-40}" <<'PY'
import glob, os, sys
records, folder, backbone, minutes = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
times = [int(open(p).read()) for f in (records, folder) for p in glob.glob(os.path.join(f, f"{backbone}-*-seed*.seconds"))]
print(int(max(times) * 1.2 + 120) if times else int(minutes * 60))
PY
}
imagenet_run() {   # backbone weights augment seed
  local name="$1-$2-$3-seed$4" need
  if [ -f "$out/imagenet/$name.json" ] || [ -f "$records/$name.json" ]; then return; fi
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "imagenet $name"; return; fi
  if [ -n "$deadline" ]; then
    need=$(imagenet_run_seconds "$1")
    if [ $(( $(date +%s) + need )) -gt "$deadline" ]; then
      log "imagenet $name not started: it needs about $((need / 60)) min, the deadline is in $(( (deadline - $(date +%s)) / 60 )) min"
      return
    fi
  fi
  log "start imagenet $name"
  RECORDS=$records BACKBONES=$1 WEIGHTS=$2 AUGMENTS=$3 SEEDS=$4 OTHER_SEEDS=$4 PRECISION=$precision OUT=$out/imagenet MEDSEG_BIN=$bin \
    bash build/imagenet-table.sh "$kvasir" > "$out/imagenet/last-call.log" 2>&1 || { log "imagenet $name failed: $(tail -1 "$out/imagenet/last-call.log")"; return; }
  log "done $(grep -E "^$name:" "$out/imagenet/last-call.log" || echo "$name")"
}
# Seconds one more seed of a DASP method is expected to take: its slowest finished seed's time with a margin (and the
# drawing of the generated pairs), else DASP_SEED_MINUTES.
dasp_seed_seconds() {
  python3 - "$out/dasp" "$1" "${DASP_SEED_MINUTES:-40}" <<'PY'
import glob, json, sys
folder, method, minutes = sys.argv[1], sys.argv[2], float(sys.argv[3])
times = [r["seconds"] for p in glob.glob(f"{folder}/{method}-part*/runs.json") for run in json.load(open(p))
         for r in run["rows"] if r["method"] == method]
print(int(max(times) * 1.2 + 300) if times else int(minutes * 60))
PY
}
dasp_part() {   # method seeds: one process in a new part folder
  local k=1; while [ -e "$out/dasp/$1-part$k" ]; do k=$((k + 1)); done
  log "start dasp $1 seeds $2 (part $k)"
  METHODS=$1 SEEDS=$2 GENERATORS=$generators OUT=$out/dasp/$1-part$k MEDSEG_BIN=$bin \
    nice -n 19 bash build/dasp-table.sh "$dasp_data" > "$out/dasp/$1-part$k.log" 2>&1 || { log "dasp $1 failed: $(tail -1 "$out/dasp/$1-part$k.log")"; return; }
  log "done dasp $1 seeds $2: $(grep -E "^\| $1 " "$out/dasp/$1-part$k/seeds.md" | head -1 || true)"
}
dasp_method() {
  local missing; missing=$(dasp_missing "$1")
  [ -n "$missing" ] || return 0
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "dasp $1 seeds $missing"; return; fi
  if [ -z "$deadline" ]; then dasp_part "$1" "$missing"; return; fi
  local s need
  for s in ${missing//,/ }; do
    need=$(dasp_seed_seconds "$1")
    if [ $(( $(date +%s) + need )) -gt "$deadline" ]; then
      log "dasp $1 seed $s not started: it needs about $((need / 60)) min, the deadline is in $(( (deadline - $(date +%s)) / 60 )) min"
      return
    fi
    dasp_part "$1" "$s"
  done
}

mkdir -p "$out/imagenet" "$out/dasp"
if [ "${TABLES_ONLY:-0}" != 1 ]; then
  [ "${DRY_RUN:-0}" = 1 ] || python3 build/kvasir-split.py "$kvasir" "$out/imagenet/split" 1 800
  for item in $order; do
    IFS=: read -r kind a b c <<< "$item"
    if [ "$kind" = dasp ]; then dasp_method "$a"; continue; fi
    # imagenet:BACKBONE[:WEIGHTS[:SEED]] — the weights' and augmentations' runs for that seed (or the backbone's seeds).
    if [ -n "$c" ]; then run_seeds=$c; elif [ "$a" = unet ]; then run_seeds=$seeds; else run_seeds=$other_seeds; fi
    for s in $run_seeds; do for w in ${b:-imagenet none}; do for aug in none basic; do imagenet_run "$a" "$w" "$aug" "$s"; done; done; done
  done
  [ "${DRY_RUN:-0}" = 1 ] && exit 0
fi

# The tables from what has finished.
RECORDS=$records TABLE_ONLY=1 OUT=$out/imagenet DEVICE_NAME="cpu ($(nproc) cores), $precision" bash build/imagenet-table.sh "$kvasir" > /dev/null 2>&1 || true
parts=()
for m in noaug basic fgsm ifgsm generated pgd sdedit diffpgd dasp; do
  for d in "$out"/dasp/"$m"-part*/; do [ -f "$d/runs.json" ] && parts+=("${d%/}"); done
done
if [ ${#parts[@]} -gt 0 ]; then
  dotnet "$bin/medseg.dll" dasp-summary "${parts[@]}" --out "$out/dasp/summary" > "$out/dasp/summary.log" 2>&1 || true
  # The papers' orderings on the same images: DASP against Generated (No-Aug < Generated < DASP), against Diff-PGD
  # without W (W helps) and against PGD + W (SDEdit helps), once those methods have rows; and against the SDEdit-only
  # control (what Diff-PGD's steps add to SDEdit's change of the pairs); and against FGSM (paper 001's ordering
  # No-Aug < FGSM < Inverse-FGSM).
  for b in generated diffpgd pgd sdedit fgsm; do
    ls "$out"/dasp/"$b"-part*/runs.json > /dev/null 2>&1 || continue
    dotnet "$bin/medseg.dll" dasp-summary "${parts[@]}" --baseline "$b" --out "$out/dasp/summary-vs-$b" > "$out/dasp/summary-vs-$b.log" 2>&1 || true
  done
fi
log "tables: $out/imagenet/table.md, $out/dasp/summary/seeds.md"
