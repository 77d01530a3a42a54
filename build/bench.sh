#!/usr/bin/env bash
# Side-by-side benchmark: our binding (test/MLNetMedSeg.Bench, Release) against PyTorch on the same libtorch
# (/usr/bin/python3 + Debian's python3-torch), same threads, same sizes, in one run. Each case runs in
# BENCH_ROUNDS alternating rounds (ours, PyTorch, ours, ...) to spread machine noise evenly; each round reports the
# median step time and the line gives the median of the round medians; rounds=<min>..<max> at the end of the line is
# the range of the per-round ratios (this machine's noise: read a ratio inside that range as a tie).
# Prints one line per case:  BENCH <case> ours_ms=<median> pytorch_ms=<median> ratio=<ours/pytorch>
# (seg_step_* cases add params=<count>: both sides report their parameter count and the run fails if they differ,
# so the C# backbone and its PyTorch twin in build/bench/networks.py stay the same network)
# and, for tiny_ops, the same loop written in C++ against libtorch (no binding at all) as the attainable floor.
# The segmentation cases (seg_step_*) also print params= (both sides must agree: the same network) and
# epochs_per_hour= (ours, for an 800-pair training set at 128 px, batch 8).
# The diffusion cases (diffusion_train_step: one forward + MSE + backward + Adam step of the image diffusion stage's
# default ADM U-Net at 64 px, batch 8; ddim50_sample: 50-step DDIM sampling of a batch of 8 at 64 px, the twin being
# DiffusionUNet in build/bench/networks.py) print params= and images_per_s= for both sides instead.
# diffpgd_batch: one DASP Diff-PGD attack of a batch of 8 RGB 64 px images with random masks (the library's
# AdversarialAttack with AdversarialAttackOptions.Dasp(): K = 10 steps of gamma = 1/255, W = exp(-z^2/8) on the clean
# logits, Eq. 10 loss, detached gradient form, SDEdit depth 3 of the T = 1000 linear schedule respaced to 50, DDIM
# eta = 0) against the default U-Net segmenter (eval) with SDEdit by an ImageDiffusionTransformer around the untrained
# default diffusion network; the PyTorch side is the same loop written plainly with the twins. It prints
# params=<segmenter>+<diffusion>, unet_calls=<diffusion network forwards>+<segmenter forwards> per attack (both sides
# must agree on both, else the run fails: the same networks, the same step sequence) and images_per_s= (attacked
# images per second, both sides).
# Environment: BENCH_THREADS (default nproc), BENCH_ITERS (10), BENCH_WARMUP (3), BENCH_ROUNDS (3), BENCH_CASES,
# BENCH_DEVICE (cpu; cuda runs the U-Net, seg_step_* and tiny_ops cases on the GPU, each step timed up to a device
# synchronize, against PyTorch's defaults there), BENCH_PYTHON (/usr/bin/python3: the PyTorch on the same libtorch),
# BENCH_BIN (a folder with a built MLNetMedSeg.Bench: skips the set-up and the build, e.g. on a GPU machine without
# the .NET SDK; build/gpu/device.sh bench), BENCH_PAIRED (1: run both sides at the same time, each pinned to its own
# core with one thread, swapping the cores every round, so that the machine's noise hits both alike; a CPU mode for
# noisy machines, comparing at 1 thread; the header line says "paired").
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BENCH_BIN:-}" ] || bash build/setup.sh >/dev/null
device=${BENCH_DEVICE:-cpu}; python=${BENCH_PYTHON:-/usr/bin/python3}
threads=${BENCH_THREADS:-$(nproc)}
paired=${BENCH_PAIRED:-0}
if [ "$paired" = 1 ]; then
  [ "$device" = cpu ] || { echo "BENCH_PAIRED is a CPU mode" >&2; exit 2; }
  [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null || { echo "BENCH_PAIRED needs 2 cores and taskset" >&2; exit 2; }
  threads=1
fi
iters=${BENCH_ITERS:-10}
warmup=${BENCH_WARMUP:-3}
rounds=${BENCH_ROUNDS:-3}
cases=${BENCH_CASES:-"unet_train_step unet_train_step_bf16 tiny_ops seg_step_unet seg_step_unetpp seg_step_linknet seg_step_deeplabv3plus diffusion_train_step ddim50_sample diffpgd_batch"}
if [ -n "${BENCH_BIN:-}" ]; then ours_bin=$BENCH_BIN/MLNetMedSeg.Bench
else
  dotnet build test/MLNetMedSeg.Bench -c Release --nologo -v q >/dev/null
  ours_bin=test/MLNetMedSeg.Bench/bin/Release/net10.0/MLNetMedSeg.Bench
fi
floor_bin=artifacts/bench/tiny_ops_floor
if [ "$device" = cpu ] && [ -z "${BENCH_BIN:-}" ]; then # the C++ floor of tiny_ops: Debian's libtorch, CPU
  mkdir -p artifacts/bench
  if [ ! -x "$floor_bin" ] || [ build/bench/tiny_ops_floor.cpp -nt "$floor_bin" ]; then
    g++ -O2 -std=c++17 build/bench/tiny_ops_floor.cpp -o "$floor_bin" -ltorch -ltorch_cpu -lc10
  fi
fi
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

libtorch=$("$python" -c 'import torch; print(torch.__version__)')
gpu=""; [ "$device" = cpu ] || gpu=" gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
echo "# device=$device$([ "$paired" = 1 ] && echo " paired") threads=$threads iters=$iters warmup=$warmup rounds=$rounds torch=$libtorch cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)$gpu"
for c in $cases; do
  args=(--threads "$threads" --iters "$iters" --warmup "$warmup" --device "$device")
  ours_all=""; theirs_all=""; round_ratios=""; ours_params=""; theirs_params=""; ours_calls=""; theirs_calls=""
  for ((r = 0; r < rounds; r++)); do
    if [ "$paired" = 1 ]; then # both at once, on cores (r mod 2) and the other one
      tmp=$(mktemp)
      taskset -c $((r % 2)) "$ours_bin" "$c" "${args[@]}" > "$tmp" & ours_pid=$!
      line=$(taskset -c $(((r + 1) % 2)) "$python" build/bench/bench_torch.py "$c" "${args[@]}")
      wait "$ours_pid"; ours_line=$(cat "$tmp"); rm -f "$tmp"
    else
      ours_line=$("$ours_bin" "$c" "${args[@]}")
      line=$("$python" build/bench/bench_torch.py "$c" "${args[@]}")
    fi
    ours_all+="$(awk '{print $2}' <<<"$ours_line")"$'\n'; ours_params=$(awk '{print $3}' <<<"$ours_line"); ours_calls=$(awk '{print $4}' <<<"$ours_line")
    theirs_all+="$(awk '{print $2}' <<<"$line")"$'\n'; theirs_params=$(awk '{print $3}' <<<"$line"); theirs_calls=$(awk '{print $4}' <<<"$line")
    round_ratios+="$(awk -v a="$(tail -n1 <<<"${ours_all%$'\n'}")" -v b="$(awk '{print $2}' <<<"$line")" 'BEGIN { printf "%.3f", a / b }')"$'\n'
  done
  spread=" rounds=$(printf '%s' "$round_ratios" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f..%.2f", lo, hi}')"
  ours=$(printf '%s' "$ours_all" | median)
  theirs=$(printf '%s' "$theirs_all" | median)
  ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')
  if [ -n "$ours_params$theirs_params" ]; then
    if [ "$ours_params" != "$theirs_params" ]; then
      echo "BENCH $c ERROR: parameter counts differ: ours=$ours_params pytorch=$theirs_params (not the same network)" >&2
      exit 1
    fi
    if [ "$ours_calls" != "$theirs_calls" ]; then
      echo "BENCH $c ERROR: network calls per run differ: ours ${ours_calls:-none} pytorch ${theirs_calls:-none} (not the same step sequence)" >&2
      exit 1
    fi
    if [ "$c" = diffpgd_batch ]; then
      # Attacked images per second: a batch of 8 per attack.
      ips=$(awk -v a="$ours" 'BEGIN { printf "%.2f", 8000 / a }')
      ips_t=$(awk -v a="$theirs" 'BEGIN { printf "%.2f", 8000 / a }')
      echo "BENCH $c ours_ms=$ours pytorch_ms=$theirs ratio=$ratio params=$ours_params $ours_calls images_per_s=$ips pytorch_images_per_s=$ips_t$spread"
      continue
    fi
    if [[ "$c" == diffusion_* || "$c" == ddim* ]]; then
      # Images per second: a batch of 8 per step (training) or per sampling run.
      ips=$(awk -v a="$ours" 'BEGIN { printf "%.2f", 8000 / a }')
      ips_t=$(awk -v a="$theirs" 'BEGIN { printf "%.2f", 8000 / a }')
      echo "BENCH $c ours_ms=$ours pytorch_ms=$theirs ratio=$ratio params=$ours_params images_per_s=$ips pytorch_images_per_s=$ips_t$spread"
      continue
    fi
    # Training throughput on Kvasir-SEG's 80% train split (800 pairs) at this case's size and batch (128 px, batch 8):
    # 100 steps per epoch.
    eph=$(awk -v a="$ours" 'BEGIN { printf "%.1f", 3600 / (a / 1000 * 100) }')
    echo "BENCH $c ours_ms=$ours pytorch_ms=$theirs ratio=$ratio params=$ours_params epochs_per_hour=$eph$spread"
  else
    echo "BENCH $c ours_ms=$ours pytorch_ms=$theirs ratio=$ratio$spread"
  fi
  if [ "$c" = tiny_ops ] && [ -x "$floor_bin" ] && [ "$device" = cpu ]; then
    fl_all=""
    for ((r = 0; r < rounds; r++)); do fl_all+="$("$floor_bin" "$threads" "$iters" "$warmup" | awk '{print $2}')"$'\n'; done
    fl=$(printf '%s' "$fl_all" | median)
    echo "# tiny_ops floor: the same loop in C++ on libtorch = ${fl} ms (best possible ratio $(awk -v a="$fl" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }'); our binding overhead = $(awk -v a="$ours" -v f="$fl" 'BEGIN { printf "%.2f", (a - f) * 1000 / 10000 }') us/op)"
  fi
  if [ "$c" = tiny_ops ] && [ "$device" = cpu ]; then
    # The same split in one process (alternating rounds): C# API vs raw calls of the same shim entry points.
    echo "# tiny_ops overhead, one process: $("$ours_bin" tiny_ops_overhead --threads "$threads" | cut -d' ' -f3-)"
  fi
done
