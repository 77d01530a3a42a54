#!/usr/bin/env bash
# Runs the runs of build/imagenet-table.sh (backbone × encoder weights × augmentation × seed) and build/dasp-table.sh
# (method × training seed) as parallel jobs on one device, then builds both tables from what finished. Meant for a GPU:
# each run is a small process that keeps a big GPU far from busy, so many run side by side (MEDSEG_NUM_THREADS=1 each).
# Jobs start longest first (DASP's generative rows, the U-Net rows, DASP's classic rows, the other backbones); no job starts after
# DEADLINE seconds, and a job still running at HARD seconds is stopped (its row is missing from the tables, which say
# how many seeds each row has). Every DASP job is one `medseg dasp` process for one (method, seed); each method trains
# from its own seed, so `medseg dasp-summary` joins the parts into exactly what one run over all of them reports.
#
# Usage: build/parallel-tables.sh DATA OUT
#   DATA: Kvasir-SEG's 1000 pairs (the original release, or RUN/all-128 of build/train-generators.sh: the same pairs made
#         at 128 × 128 exactly as the shipped sample is). OUT: tables, logs and figures (small files only).
# Environment: MEDSEG_BIN (required: a folder with a built medseg.dll; `dotnet` on PATH), DEVICE (cuda), JOBS (12),
#   DEADLINE (420), HARD (540), WORK (/tmp/parallel-tables: models and run folders),
#   IMAGENET (1: run the ImageNet table), IMAGENET_SEEDS ("1 2 3": U-Net rows), IMAGENET_OTHER_SEEDS ("1"),
#   IMAGENET_EPOCHS (30), IMAGENET_SIZE (128), IMAGENET_TRAIN_PAIRS (800), BACKBONES ("unet unetpp linknet deeplabv3plus"),
#   DASP (1: run DASP's tables), GENERATORS (required with DASP=1), DASP_SEEDS ("1 2 3"), DASP_METHODS
#   ("dasp diffpgd pgd generated fgsm ifgsm noaug basic"), DASP_PAIRS (200), DASP_SIZE (64), DASP_EPOCHS (15),
#   ATTACK_EVERY (5), DEVICE_NAME (the device as the tables name it), DRY_RUN (1: print the jobs in their order and stop).
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(realpath "$1"); out=$(mkdir -p "$2" && realpath "$2")
: "${MEDSEG_BIN:?give MEDSEG_BIN, a folder with a built medseg.dll}"
device=${DEVICE:-cuda}; jobs=${JOBS:-12}; deadline=${DEADLINE:-420}; hard=${HARD:-540}
work=${WORK:-/tmp/parallel-tables}; mkdir -p "$work"
export MEDSEG_BIN MEDSEG_NUM_THREADS=1 DEVICE="$device" DEVICE_NAME="${DEVICE_NAME:-$device}"
start=$(date +%s)
log() { printf '[%4d s] %s\n' "$(( $(date +%s) - start ))" "$*" | tee -a "$out/jobs.log"; }

# The job list, in the order the jobs start: "kind name command…".
list="$work/jobs.txt"; : > "$list"
in_seeds=${IMAGENET_SEEDS:-"1 2 3"}; in_other=${IMAGENET_OTHER_SEEDS:-"1"}
d_seeds=${DASP_SEEDS:-"1 2 3"}; d_methods=${DASP_METHODS:-"dasp diffpgd pgd generated fgsm ifgsm noaug basic"}
backbones=${BACKBONES:-"unet unetpp linknet deeplabv3plus"}
imagenet_env="EPOCHS=${IMAGENET_EPOCHS:-30} SIZE=${IMAGENET_SIZE:-128} TRAIN_PAIRS=${IMAGENET_TRAIN_PAIRS:-800} OUT=$out/imagenet MODELS=$work/imagenet-models"
dasp_env="PAIRS=${DASP_PAIRS:-200} SIZE=${DASP_SIZE:-64} EPOCHS=${DASP_EPOCHS:-15} ATTACK_EVERY=${ATTACK_EVERY:-5} SEED=1 GENERATORS=${GENERATORS:-}"
# Longest first (the makespan is what the deadline cuts): DASP's generative rows, the U-Net rows (3 seeds), DASP's
# classic rows, then the other backbones.
dasp_job() { echo "dasp $1-seed$2 env $dasp_env METHODS=$1 SEEDS=$2 OUT=$work/dasp/$1-seed$2 bash build/dasp-table.sh $data" >> "$list"; }
imagenet_job() {
  for w in imagenet none; do for a in none basic; do
    echo "imagenet $1-$w-$a-seed$2 env $imagenet_env BACKBONES=$1 WEIGHTS=$w AUGMENTS=$a SEEDS=$2 OTHER_SEEDS=$2 bash build/imagenet-table.sh $data" >> "$list"
  done; done
}
generative=" dasp diffpgd sdedit pgd generated generated-y "
if [ "${DASP:-1}" = 1 ]; then
  for m in $d_methods; do [[ $generative == *" $m "* ]] && for s in $d_seeds; do dasp_job "$m" "$s"; done; done
fi
if [ "${IMAGENET:-1}" = 1 ] && [[ " $backbones " == *" unet "* ]]; then for s in $in_seeds; do imagenet_job unet "$s"; done; fi
if [ "${DASP:-1}" = 1 ]; then
  for m in $d_methods; do [[ $generative == *" $m "* ]] || for s in $d_seeds; do dasp_job "$m" "$s"; done; done
fi
if [ "${IMAGENET:-1}" = 1 ]; then
  for b in $backbones; do [ "$b" = unet ] || for s in $in_other; do imagenet_job "$b" "$s"; done; done
fi
if [ "${DASP:-1}" = 1 ]; then
  [ -f "${GENERATORS:-}" ] || { echo "parallel-tables: GENERATORS='${GENERATORS:-}' is not a file (the DASP jobs need the trained generators)" >&2; exit 1; }
fi
if [ "${DRY_RUN:-0}" = 1 ]; then cut -d' ' -f1,2 "$list"; exit 0; fi
# The ImageNet split once, before the jobs that share it start.
[ "${IMAGENET:-1}" = 1 ] && python3 build/kvasir-split.py "$data" "$out/imagenet/split" "${SPLIT_SEED:-1}" "${IMAGENET_TRAIN_PAIRS:-800}"
log "parallel-tables: $(wc -l < "$list") jobs, $jobs at a time on $device; no start after ${deadline} s, stop at ${hard} s"

mkdir -p "$out/logs"
while read -r kind name cmd; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  elapsed=$(( $(date +%s) - start ))
  if [ "$elapsed" -ge "$deadline" ]; then log "deadline: $kind $name not started"; continue; fi
  (
    t0=$(date +%s)
    rc=0; timeout --signal=TERM --kill-after=10 $(( hard - elapsed )) bash -c "$cmd" < /dev/null > "$out/logs/$kind-$name.log" 2>&1 || rc=$?
    log "$kind $name: rc $rc, $(( $(date +%s) - t0 )) s"
  ) &
  log "started $kind $name"
done < "$list"
wait || true

# The tables from what finished.
if [ "${IMAGENET:-1}" = 1 ]; then
  TABLE_ONLY=1 OUT="$out/imagenet" SIZE=${IMAGENET_SIZE:-128} EPOCHS=${IMAGENET_EPOCHS:-30} TRAIN_PAIRS=${IMAGENET_TRAIN_PAIRS:-800} \
    bash build/imagenet-table.sh "$data" > "$out/imagenet-table.md" 2>&1 || true
  rm -rf "$out/imagenet/split"
fi
if [ "${DASP:-1}" = 1 ]; then
  mkdir -p "$out/dasp"
  parts=()
  # Table 2's order: the classic rows, then the generative ones (dasp-summary keeps the order of its parts).
  for m in noaug basic fgsm ifgsm generated-y generated pgd sdedit diffpgd dasp; do for s in $d_seeds; do
    d="$work/dasp/$m-seed$s"; [ -d "$d" ] || continue
    n=$(basename "$d"); mkdir -p "$out/dasp/$n"
    for f in runs.json comparison.md metrics.json log.txt; do [ -f "$d/$f" ] && cp "$d/$f" "$out/dasp/$n/"; done
    [ -d "$d/figures" ] && { mkdir -p "$out/dasp/$n/figures"; find "$d/figures" -maxdepth 1 -name '*.png' -exec cp {} "$out/dasp/$n/figures/" \; ; }
    [ -f "$d/runs.json" ] && parts+=("$d")
  done; done
  if [ ${#parts[@]} -gt 0 ]; then
    dotnet "$MEDSEG_BIN/medseg.dll" dasp-summary "${parts[@]}" --out "$out/dasp/summary" > "$out/dasp-table.md" 2>&1 || true
  fi
fi
log "done"
