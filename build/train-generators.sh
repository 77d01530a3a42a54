#!/usr/bin/env bash
# Trains the shipped Kvasir-SEG generators (data/models/kvasir-64-generators.zip): DASP's Bernoulli mask diffusion and
# the mask-conditioned image diffusion, with `medseg generate`, at 64 px, on Kvasir-SEG minus every pair of the shipped
# sample data/kvasir-seg-sample (the demo's held-out images are never generator training data).
#
# Background-friendly and resumable: everything lives in RUN (default runs/generators; give an absolute path outside
# any git worktree for a job that must outlive it, e.g. GENERATORS_RUN=/work/runs/generators):
#   RUN/data/{images,masks}   the training pairs (symlinks into RUN/all-128, made once)
#   RUN/all-128               all 1000 pairs at 128×128, made exactly as the sample is (build/tools/MakeSample, seed 20201)
#   RUN/bin                   a copy of the built medseg tool (the job does not depend on the checkout it came from)
#   RUN/ckpt/{mask-diffusion,image-diffusion}  resume checkpoints (checkpoint.json + weights) after every epoch, and
#                             sample grids (grids/) every GRID_EVERY epochs
#   RUN/train.log             the log (appended); RUN/samples: pairs drawn from the finished models
#   RUN/kvasir-64-generators.zip  the fitted ML.NET model, also copied to data/models/ of this checkout when done
# Re-running the script continues each model after its last finished epoch; a model already at EPOCHS trains no step;
# a larger EPOCHS trains on. A second copy started while one runs exits at once (lock file RUN/lock).
# Everything runs under `nice -n 19` so that builds and tests on the same machine come first.
#
# Usage: [GENERATORS_RUN=DIR] [EPOCHS=N] build/train-generators.sh
# Environment: GENERATORS_RUN (runs/generators), KVASIR (../shared/data/kvasir-seg, the original release),
#   EPOCHS (200: the final target of both models), STAGES ("5 10 20 40 60 80 100 125 150 175": intermediate targets,
#   each saving a generator), MASK_LR (1e-3), IMAGE_LR (5e-4), GRID_EVERY (5), SEED (0), COUNT (64 pairs drawn at
#   the end; 16 after intermediate stages), DEVICE (cpu), REUSE_BIN (0; 1 runs RUN/bin/medseg as it is, without building).
# Change nothing but EPOCHS/STAGES/COUNT between runs sharing a RUN folder: the checkpoints refuse other options
# (GRID_EVERY included: 0 and > 0 train with different handler lists).
# Stop it with `kill -TERM <medseg pid>` (or Ctrl-C): training stops at the next step; the checkpoint of the last
# finished epoch stays, and re-running the script resumes from it.
set -euo pipefail
# A background job started with setsid gets its own scheduler autogroup, where `nice` alone does not yield to the
# foreground: lower the group's weight too, so builds and tests keep the CPU (best effort; Linux only).
echo 19 > /proc/self/autogroup 2>/dev/null || true
# The whole script is one function, read before anything runs: editing this file while a run is going does not change
# (or break) that run.
main() {
  cd "$(dirname "$0")/.."
  repo=$(pwd)
  run=${GENERATORS_RUN:-runs/generators}
  case "$run" in /*) ;; *) run="$repo/$run" ;; esac
  kvasir=${KVASIR:-$repo/../shared/data/kvasir-seg}
  epochs=${EPOCHS:-200}
  stages=${STAGES:-"5 10 20 40 60 80 100 125 150 175"}
  mask_lr=${MASK_LR:-1e-3}
  image_lr=${IMAGE_LR:-5e-4}
  grid_every=${GRID_EVERY:-5}
  seed=${SEED:-0}
  count=${COUNT:-64}
  device=${DEVICE:-cpu}
  mkdir -p "$run"
  exec 9>"$run/lock"
  if ! flock -n 9; then echo "train-generators: another run holds $run/lock; not starting a second one" >&2; exit 1; fi
  log="$run/train.log"
  say() { printf '[%s] %s\n' "$(date -u +%FT%TZ)" "$*" | tee -a "$log" >&2; }
  say "train-generators: run folder $run, checkout $repo ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')), epochs $epochs, lr mask $mask_lr image $image_lr"

  # 1. Build the tools and copy medseg out of the checkout (REUSE_BIN=1: keep RUN/bin, the medseg the checkpoints were
  #    written with — for resuming from a checkout whose diffusion options have changed since, which the checkpoints refuse).
  if [ "${REUSE_BIN:-0}" = 1 ] && [ -x "$run/bin/medseg" ]; then
    say "reusing $run/bin/medseg"
  else
    nice -n 19 dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >>"$log" 2>&1
    rm -rf "$run/bin.new"
    cp -a src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64 "$run/bin.new"
    rm -rf "$run/bin"
    mv "$run/bin.new" "$run/bin"
  fi
  if [ ! -f "$run/all-128/done" ]; then
    nice -n 19 dotnet build build/tools/MakeSample -c Release --nologo -v q >>"$log" 2>&1
  fi

  # 2. The training set: all pairs resized as the sample was, minus the sample's ids.
  if [ ! -f "$run/all-128/done" ]; then
    [ -d "$kvasir/images" ] && [ -d "$kvasir/masks" ] || { say "no Kvasir-SEG release at $kvasir (set KVASIR)"; exit 1; }
    say "resizing the 1000 Kvasir-SEG pairs to 128x128 (build/tools/MakeSample, as data/kvasir-seg-sample)"
    rm -rf "$run/all-128"
    nice -n 19 build/tools/MakeSample/bin/Release/net10.0/linux-x64/MakeSample "$kvasir" "$run/all-128" 1000 128 20201 >>"$log" 2>&1
    touch "$run/all-128/done"
  fi
  if [ ! -f "$run/data/done" ]; then
    rm -rf "$run/data"
    mkdir -p "$run/data/images" "$run/data/masks"
    held_out=0
    for img in "$run"/all-128/images/*.jpg; do
      id=$(basename "$img" .jpg)
      if [ -e "data/kvasir-seg-sample/images/$id.jpg" ] || [ -e "data/kvasir-seg-sample/masks/$id.png" ]; then
        held_out=$((held_out + 1)); continue
      fi
      ln -s "$img" "$run/data/images/$id.jpg"
      ln -s "$run/all-128/masks/$id.png" "$run/data/masks/$id.png"
    done
    n=$(ls "$run/data/images" | wc -l)
    sample=$(ls data/kvasir-seg-sample/images | wc -l)
    [ "$held_out" -eq "$sample" ] || { say "expected all $sample sample ids among the 1000 pairs, found $held_out"; exit 1; }
    # No sample id may be in the training set.
    overlap=$(comm -12 <(ls "$run/data/images" | sed 's/\.[^.]*$//' | sort) <(ls data/kvasir-seg-sample/images | sed 's/\.[^.]*$//' | sort) | wc -l)
    [ "$overlap" -eq 0 ] || { say "BUG: $overlap sample ids in the training set"; exit 1; }
    say "training set: $n pairs (1000 minus the $held_out of data/kvasir-seg-sample)"
    touch "$run/data/done"
  fi

  # 3. Train (or resume) both models up a ladder of epoch targets: each stage resumes each model from its checkpoint and
  #    trains it on to the stage's epochs (mask model, then image model), so both improve together and a usable generator
  #    exists after every stage (RUN/models/kvasir-64-generators-eNNNN.zip; RUN/kvasir-64-generators.zip is the latest).
  #    Resuming makes the ladder give exactly the models a straight EPOCHS-epoch run would.
  zip="$run/kvasir-64-generators.zip"
  mkdir -p "$run/models"
  targets=()
  for e in $stages; do [ "$e" -lt "$epochs" ] && targets+=("$e"); done
  targets+=("$epochs")
  for e in "${targets[@]}"; do
    stage_zip="$run/models/kvasir-64-generators-e$(printf '%04d' "$e").zip"
    if [ -f "$stage_zip" ] && [ "$e" -ne "$epochs" ]; then continue; fi
    if [ "$e" -eq "$epochs" ]; then k=$count; else k=16; fi
    say "stage: both models to epoch $e (resuming from $run/ckpt)"
    rm -rf "$run/samples"
    set +e
    nice -n 19 "$run/bin/medseg" generate --data "$run/data" --size 64 --epochs "$e" --mask-steps 1000 --image-steps 1000 \
      --sampler ddim --sample-steps 50 --batch 16 --mask-lr "$mask_lr" --image-lr "$image_lr" --seed "$seed" --device "$device" \
      --checkpoints "$run/ckpt" --sample-grid-every "$grid_every" \
      --count "$k" --out "$run/samples" --save-model "$zip" >>"$log" 2>&1
    rc=$?
    set -e
    if [ $rc -ne 0 ]; then say "medseg generate failed or was stopped (exit $rc); see $log — re-run this script to resume"; exit $rc; fi
    cp "$zip" "$stage_zip"
    say "stage done: epoch $e, $stage_zip ($(du -h "$zip" | cut -f1)); samples in $run/samples"
  done
  if [ -d "$repo/data" ]; then
    mkdir -p "$repo/data/models"
    cp "$zip" "$repo/data/models/kvasir-64-generators.zip"
    say "done: $zip ($(du -h "$zip" | cut -f1)), copied to $repo/data/models/kvasir-64-generators.zip"
  else
    say "done: $zip ($(du -h "$zip" | cut -f1))"
  fi
}
main "$@"
exit
