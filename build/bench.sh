#!/usr/bin/env bash
# Side-by-side benchmark: our binding (test/MLNetMedSeg.Bench, Release) against PyTorch on the same libtorch
# (/usr/bin/python3 + Debian's python3-torch), same threads, same sizes, in one run.
# Prints one line per case: BENCH <case> ours_ms=<median> pytorch_ms=<median> ratio=<ours/pytorch>
# Options (environment): BENCH_THREADS (default: nproc), BENCH_ITERS (10), BENCH_WARMUP (3), BENCH_CASES.
set -euo pipefail
cd "$(dirname "$0")/.."
bash build/setup.sh >/dev/null
threads=${BENCH_THREADS:-$(nproc)}
iters=${BENCH_ITERS:-10}
warmup=${BENCH_WARMUP:-3}
cases=${BENCH_CASES:-"unet_train_step unet_train_step_bf16 tiny_ops"}
dotnet build test/MLNetMedSeg.Bench -c Release --nologo -v q >/dev/null
ours_bin=test/MLNetMedSeg.Bench/bin/Release/net10.0/MLNetMedSeg.Bench
echo "# threads=$threads iters=$iters warmup=$warmup libtorch=$(dpkg-query -W -f='${Version}' libtorch-dev) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for c in $cases; do
  args=(--threads "$threads" --iters "$iters" --warmup "$warmup")
  ours=$("$ours_bin" "$c" "${args[@]}" | awk '{print $2}')
  theirs=$(/usr/bin/python3 build/bench/bench_torch.py "$c" "${args[@]}" | awk '{print $2}')
  ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')
  echo "BENCH $c ours_ms=$ours pytorch_ms=$theirs ratio=$ratio"
done
