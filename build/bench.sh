#!/usr/bin/env bash
# Side-by-side benchmark: the library on TorchSharp (test/MLNetMedSeg.Bench, Release; libtorch 2.10 from NuGet)
# against PyTorch (/usr/bin/python3 + Debian's python3-torch; build/bench/bench_torch.py), same threads, same sizes,
# same networks, in one run. Each case runs in BENCH_ROUNDS alternating rounds (TorchSharp, PyTorch, TorchSharp, ...)
# to spread machine noise evenly; each round reports the median step time and the line gives the median of the round
# medians; rounds=<min>..<max> at the end of the line is the range of the per-round ratios (this machine's noise: read
# a ratio inside that range as a tie).
# Prints one line per case:  BENCH <case> ours_ms=<median> pytorch_ms=<median> ratio=<ours/pytorch> ... rounds=<lo>..<hi>
# ("ours" is the TorchSharp side). Two more readings for a busy machine: best_ms=<ours>/<pytorch> and best_ratio= (the
# fastest single runs over all rounds), cpu_ms=<ours>/<pytorch> and cpu_ratio= (medians of the CPU time, user + system
# of all threads, per run: with one thread, as in paired mode, the work itself, which other processes do not stretch;
# with more, OpenMP's spinning threads count too). Cases:
#   sgemm, sgemm_bf16  a 2048^3 matrix product (fp32, bf16): gflops= and pytorch_gflops=. The larger fp32 rate of the
#                 two sides is the "peak" the training steps are compared with (a reference, not a race: Debian's
#                 python3-torch does fp32 GEMM through the BLAS that /etc/alternatives selects).
#   tiny_ops      10k elementwise ops on 16 floats: us_per_op= both sides (TorchSharp's per-op cost; no target).
#   unet_train_step[_bf16][_channels_last]   one training step (forward, soft Dice, backward, Adam) of the 7.76 M
#                 U-Net (test/MLNetMedSeg.Bench/UNet.cs = UNet in bench_torch.py), 128 px, batch 8.
#                 _channels_last: input and 4-D weights channels-last on both sides; _bf16: mixed precision (PyTorch:
#                 torch.autocast('cpu', bfloat16); TorchSharp, which has no autocast: fp32 master weights + a bf16
#                 compute copy, see TrainStepCase.cs).
#   seg_step_<arch>[_bf16][_channels_last]   the same step for a library backbone (unet, unetpp, linknet,
#                 deeplabv3plus) against its PyTorch twin in build/bench/networks.py.
#                 The training-step cases print params= (both sides must agree: the same network, else the run fails),
#                 gflop= (the step's FLOPs: forward conv/linear FLOPs counted by forward hooks, 2 per multiply-add, x3
#                 for forward + backward), gflops= / pytorch_gflops= (achieved) and peak_frac= / pytorch_peak_frac=
#                 (achieved / fp32 sgemm peak), and epochs_per_hour= / pytorch_epochs_per_hour= (an 800-pair training
#                 set at 128 px, batch 8: 100 steps per epoch).
#   diffusion_train_step, ddim50_sample   one forward + MSE + backward + Adam step of the image diffusion stage's default
#                 ADM U-Net at 64 px, batch 8; 50-step DDIM sampling of a batch of 8 at 64 px (the twin being
#                 DiffusionUNet in build/bench/networks.py): params= and images_per_s= both sides.
#   diffpgd_batch one DASP Diff-PGD attack of a batch of 8 RGB 64 px images with random masks (the library's
#                 AdversarialAttack with AdversarialAttackOptions.Dasp(): K = 10 steps of gamma = 1/255, W = exp(-z^2/8) on
#                 the clean logits, Eq. 10 loss, detached gradient form, SDEdit depth 3 of the T = 1000 linear schedule
#                 respaced to 50, DDIM eta = 0) against the default U-Net segmenter (eval) with SDEdit by an
#                 ImageDiffusionTransformer around the untrained default diffusion network; the PyTorch side is the same
#                 loop written plainly with the twins. params=<segmenter>+<diffusion>, unet_calls=<diffusion
#                 forwards>+<segmenter forwards> per attack (both must agree) and images_per_s= both sides.
#   cdal_train_step, cdal_predict5   cDAL (paper 003) with the network the CLI trains (CdalTrainerOptions.CpuSizedModel()),
#                 64 px, batch 8, T = 2: one Algorithm-1 iteration (CdalTrainingStep.Step: D step with R1, then G step on
#                 the attention-weighted x0) and Algorithm 2 with 5 samples averaged per image (CdalSampler); twins
#                 CdalGenerator/CdalDiscriminator in build/bench/networks.py: params= (train: <generator>+<discriminator>)
#                 and images_per_s= both sides; slow cases (BENCH_SLOW_ITERS / BENCH_SLOW_WARMUP).
# A summary follows: the issue's targets (every case ratio <= 0.75 except the sgemm and tiny_ops references;
# unet_train_step >= 75% of the fp32 sgemm peak; bf16 >= 1.8x faster than fp32), each marked met or MISSED, the last two
# also from interleaved_unet (see the summary below; BENCH_INTERLEAVED=0 skips it).
# Environment: BENCH_THREADS (default nproc), BENCH_ITERS (10), BENCH_WARMUP (3), BENCH_ROUNDS (3), BENCH_CASES,
# BENCH_SLOW_ITERS (3) and BENCH_SLOW_WARMUP (1) (ddim50_sample, diffpgd_batch and the cdal_* cases: seconds to tens of
# seconds per run),
# BENCH_DEVICE (cpu; cuda runs the training-step, sgemm and tiny_ops cases on the GPU, each step timed up to a device
# synchronize), BENCH_PYTHON (/usr/bin/python3), BENCH_BIN (a folder with a built MLNetMedSeg.Bench: skips the set-up
# and the build), BENCH_PAIRED (1: run both sides at the same time, each pinned to its own core with one thread,
# swapping the cores every round, so that the machine's noise hits both alike; a CPU mode for noisy machines,
# comparing at 1 thread; the header line says "paired").
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
slow_iters=${BENCH_SLOW_ITERS:-3}
slow_warmup=${BENCH_SLOW_WARMUP:-1}
cases=${BENCH_CASES:-"sgemm sgemm_bf16 tiny_ops unet_train_step unet_train_step_channels_last unet_train_step_bf16 unet_train_step_bf16_channels_last seg_step_unet seg_step_unetpp seg_step_linknet seg_step_deeplabv3plus diffusion_train_step ddim50_sample diffpgd_batch cdal_train_step cdal_predict5"}
if [ -n "${BENCH_BIN:-}" ]; then ours_bin=$BENCH_BIN/MLNetMedSeg.Bench
else
  dotnet build test/MLNetMedSeg.Bench -c Release --nologo -v q >/dev/null
  ours_bin=test/MLNetMedSeg.Bench/bin/Release/net10.0/linux-x64/MLNetMedSeg.Bench
fi
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
# field KEY: the value of KEY=... in the line on stdin (empty when absent)
field() { awk -v k="$1=" '{for (i = 3; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1)}'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

torch_version=$("$python" -c 'import torch; print(torch.__version__)')
gpu=""; [ "$device" = cpu ] || gpu=" gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') device=$device$([ "$paired" = 1 ] && echo " paired") threads=$threads iters=$iters warmup=$warmup slow_iters=$slow_iters slow_warmup=$slow_warmup rounds=$rounds torchsharp=0.107.0/libtorch-2.10.0 pytorch=$torch_version cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)$gpu"

declare -A ours_ms theirs_ms ratio_of flops_of cpu_ratio_of
peak=""; misses=""
for c in $cases; do
  case "$c" in # a DDIM-50 run, an attack or a cDAL step takes seconds to tens of seconds: fewer iterations (BENCH_SLOW_ITERS, BENCH_SLOW_WARMUP)
    ddim50_sample|diffpgd_batch|cdal_*) args=(--threads "$threads" --iters "$slow_iters" --warmup "$slow_warmup" --device "$device") ;;
    *) args=(--threads "$threads" --iters "$iters" --warmup "$warmup" --device "$device") ;;
  esac
  ours_all=""; theirs_all=""; round_ratios=""; ours_min=""; theirs_min=""; ours_cpu=""; theirs_cpu=""
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
    a=$(awk '{print $2}' <<<"$ours_line"); b=$(awk '{print $2}' <<<"$line")
    ours_all+="$a"$'\n'; theirs_all+="$b"$'\n'
    ours_min+="$(field min_ms <<<"$ours_line")"$'\n'; theirs_min+="$(field min_ms <<<"$line")"$'\n'
    ours_cpu+="$(field cpu_ms <<<"$ours_line")"$'\n'; theirs_cpu+="$(field cpu_ms <<<"$line")"$'\n'
    round_ratios+="$(calc %.3f "$a / $b")"$'\n'
    for k in params calls; do
      o=$(field $k <<<"$ours_line"); t=$(field $k <<<"$line")
      if [ "$o" != "$t" ]; then
        echo "BENCH $c ERROR: $k differ: ours=${o:-none} pytorch=${t:-none} (not the same network or step sequence)" >&2
        exit 1
      fi
    done
  done
  spread="rounds=$(printf '%s' "$round_ratios" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f..%.2f", lo, hi}')"
  ours=$(printf '%s' "$ours_all" | median)
  theirs=$(printf '%s' "$theirs_all" | median)
  ratio=$(calc %.2f "$ours / $theirs")
  best_o=$(printf '%s' "$ours_min" | sort -g | head -1); best_t=$(printf '%s' "$theirs_min" | sort -g | head -1)
  best=" best_ms=$best_o/$best_t best_ratio=$(calc %.2f "$best_o / $best_t")"
  cpu_o=$(printf '%s' "$ours_cpu" | median); cpu_t=$(printf '%s' "$theirs_cpu" | median)
  best+=" cpu_ms=$cpu_o/$cpu_t cpu_ratio=$(calc %.2f "$cpu_o / $cpu_t")"
  cpu_ratio_of[$c]=$(calc %.2f "$cpu_o / $cpu_t")
  ours_ms[$c]=$ours; theirs_ms[$c]=$theirs; ratio_of[$c]=$ratio
  params=$(field params <<<"$ours_line"); calls=$(field calls <<<"$ours_line"); flops=$(field flops <<<"$ours_line")
  cl=$(field cl <<<"$ours_line"); flops_of[$c]=$flops
  extra=""
  case "$c" in
    sgemm|sgemm_bf16)
      n=2048
      g_o=$(calc %.1f "2 * $n^3 / ($ours * 1e6)"); g_t=$(calc %.1f "2 * $n^3 / ($theirs * 1e6)")
      extra=" gflops=$g_o pytorch_gflops=$g_t (reference)"
      [ "$c" = sgemm ] && peak=$(calc %.1f "($g_o > $g_t ? $g_o : $g_t)")
      ;;
    tiny_ops)
      extra=" us_per_op=$(calc %.3f "$ours * 1000 / 10000") pytorch_us_per_op=$(calc %.3f "$theirs * 1000 / 10000") (no target)"
      ;;
    unet_train_step*|seg_step_*)
      if [ -z "$peak" ]; then # the fp32 peak of this run's set-up (TorchSharp's sgemm) when the sgemm case was not run
        pin=(); [ "$paired" = 1 ] && pin=(taskset -c 0)
        peak=$("${pin[@]}" "$ours_bin" sgemm "${args[@]}" | field gflops)
        echo "# fp32 sgemm peak (TorchSharp side only, sgemm case not run): $peak GFLOP/s"
      fi
      extra=" params=$params gflop=$(calc %.1f "$flops / 1e9")"
      extra+=" gflops=$(calc %.1f "$flops / ($ours * 1e6)") pytorch_gflops=$(calc %.1f "$flops / ($theirs * 1e6)")"
      extra+=" peak_frac=$(calc %.3f "$flops / ($ours * 1e6) / $peak") pytorch_peak_frac=$(calc %.3f "$flops / ($theirs * 1e6) / $peak")"
      # Training throughput on Kvasir-SEG's 80% train split (800 pairs) at 128 px, batch 8: 100 steps per epoch.
      extra+=" epochs_per_hour=$(calc %.1f "3600 / ($ours / 1000 * 100)") pytorch_epochs_per_hour=$(calc %.1f "3600 / ($theirs / 1000 * 100)")"
      [ -n "$cl" ] && extra+=" channels_last=$cl"
      ;;
    diffpgd_batch)
      extra=" params=$params unet_calls=$calls images_per_s=$(calc %.2f "8000 / $ours") pytorch_images_per_s=$(calc %.2f "8000 / $theirs")"
      ;;
    diffusion_*|ddim*|cdal_*)
      extra=" params=$params images_per_s=$(calc %.2f "8000 / $ours") pytorch_images_per_s=$(calc %.2f "8000 / $theirs")"
      ;;
  esac
  echo "BENCH $c ours_ms=$ours pytorch_ms=$theirs ratio=$ratio$extra$best $spread"
done

# Summary: the issue's targets.
# 1. Every case's ratio <= 0.75 (not the sgemm and tiny_ops references).
# 2. unet_train_step >= 75% of the fp32 sgemm peak, and 3. mixed precision >= 1.8x faster than fp32: from the cases
#    above (each case ran at its own time, so machine noise differs between them), and from interleaved_unet
#    (TorchSharp only: the four U-Net steps and the matmul alternate in one process, one run each per round, so noise
#    hits them alike; wall-clock and CPU-time readings, the medians of the per-round quotients).
echo "# summary"
ok() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { exit !(op == "le" ? v <= t : v >= t) }' && echo met || echo MISSED; }
for c in $cases; do
  case "$c" in sgemm*|tiny_ops) continue ;; esac
  v=$(ok "${ratio_of[$c]}" 0.75 le); [ "$v" = met ] || misses+=" $c:ratio"
  echo "# target ratio <= 0.75: $c ratio=${ratio_of[$c]} cpu_ratio=${cpu_ratio_of[$c]}: $v"
done
for c in $cases; do
  case "$c" in *_bf16*) ;; *) continue ;; esac
  base=${c/_bf16/}; plain=${base/_channels_last/}
  againsts=$base; [ "$plain" = "$base" ] || againsts+=" $plain"
  for b in $againsts; do # against the same layout in fp32, and against the default fp32 step
    [ -n "${ours_ms[$b]:-}" ] || continue
    so=$(calc %.2f "${ours_ms[$b]} / ${ours_ms[$c]}"); st=$(calc %.2f "${theirs_ms[$b]} / ${theirs_ms[$c]}")
    echo "# target mixed precision >= 1.8x (cases): $c vs $b: TorchSharp ${so}x, PyTorch ${st}x: $(ok "$so" 1.8 ge)"
  done
done
if [ -n "${ours_ms[unet_train_step]:-}" ] && [ -n "$peak" ]; then
  f=${flops_of[unet_train_step]}
  frac=$(calc %.3f "$f / (${ours_ms[unet_train_step]} * 1e6) / $peak")
  echo "# target >= 0.75 of the sgemm peak (cases): unet_train_step $(calc %.1f "$f / (${ours_ms[unet_train_step]} * 1e6)") GFLOP/s / $peak GFLOP/s = $frac: $(ok "$frac" 0.75 ge)"
fi
if [[ " $cases " == *" unet_train_step "* ]] && [ "${BENCH_INTERLEAVED:-1}" = 1 ]; then
  pin=(); [ "$paired" = 1 ] && pin=(taskset -c 0)
  il=$("${pin[@]}" "$ours_bin" interleaved_unet --threads "$threads" --iters "$iters" --warmup 1 --device "$device")
  echo "# interleaved_unet: $(cut -d' ' -f3- <<<"$il")"
  for sfx in "" _cpu; do
    what=$([ -z "$sfx" ] && echo wall-clock || echo CPU-time)
    frac=$(field "peak_frac$sfx" <<<"$il")
    v=$(ok "$frac" 0.75 ge); [ "$v" = met ] || misses+=" unet_train_step:peak($what)"
    echo "# target >= 0.75 of the sgemm peak (interleaved, $what): unet_train_step at $frac of $(field "sgemm_gflops$sfx" <<<"$il") GFLOP/s: $v"
    for k in bf16 bf16_channels_last bf16_channels_last_vs_channels_last; do
      sp=$(field "speedup_$k$sfx" <<<"$il")
      v=$(ok "$sp" 1.8 ge); [ "$v" = met ] || misses+=" $k:speedup($what)"
      echo "# target mixed precision >= 1.8x (interleaved, $what): speedup_$k=${sp}x: $v"
    done
  done
fi
echo "# targets missed:${misses:- none}"
