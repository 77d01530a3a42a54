#!/usr/bin/env bash
# Runs on a lent GPU machine (the device tool), in a copy of the repository with .gpu/ carried (build/gpu/bundle.sh):
#   bash build/gpu/device.sh start [SECONDS]   unpack, build the shim against that machine's CUDA libtorch (CMake, as
#                                              MEDSEG_TORCH_DIR does; g++ directly if CMake cannot configure), run the
#                                              binding's tests and the CUDA tests, start the real-data runs in the
#                                              background, then collect after SECONDS (default 420)
#   bash build/gpu/device.sh collect [SECONDS] wait up to SECONDS (or until the runs end) and collect
# TORCH_TESTS_FILTER narrows the binding's tests (an MSTest --filter; default: all of them).
# What comes back is under $OUT: libmedseg_torch.so, logs and results.tar.gz (reports, tables, figures; no models).
# Runs (all on DEVICE, default cuda, in parallel, each with one libtorch CPU thread), switched by RUNS (default "dasp diffusion64 deform kvasir"):
#   dasp        medseg dasp on Kvasir-SEG at DASP_SIZE (128): the classic methods, and the generative ones (3 processes;
#               DASP_PARTS picks the method groups, one process each, e.g. DASP_PARTS="dasp diffpgd")
#   diffusion64 the diffusion models trained long (LONG_DIFFUSION_EPOCHS, 300) at 64 px, sample grids every 25 epochs
#   bench       build/bench.sh on the GPU (BENCH_DEVICE=cuda; U-Net, seg_step_* and tiny_ops against the PyTorch
#               there), in the foreground before the other runs start, so that it has the machine to itself
#   tests-all   the whole library test suite against that machine's libtorch (CPU; not by default: next to the other
#               runs it got too little CPU to finish within a lease)
#   deform      build/deform-table.sh: the ξ sweep and the augmenter comparison (PARALLEL=1)
#   kvasir      build/kvasir-table.sh: all backbones, none/basic, the README table's settings (64 px, 10 epochs)
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
W=/tmp/medseg; R=$W/runs
OUT=${OUT:-$W/out}; mkdir -p "$OUT"
mode=${1:-start}; wait_s=${2:-420}
t0=$(date +%s)

env_setup() {
  export DOTNET_ROOT=$W/dotnet PATH=$W/dotnet:$W/bin:$PATH DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  TORCH_PY=$(${PYTHON:-python3} -c 'import torch, os; print(os.path.dirname(torch.__file__))')
  export LD_LIBRARY_PATH=$TORCH_PY/lib:$W/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export MEDSEG_NUM_THREADS=${MEDSEG_NUM_THREADS:-1}
  export MEDSEG_TEST_PYTHON=$(command -v ${PYTHON:-python3}) # the safetensors interop tests: that machine has no Debian torch
}

collect() {
  cp "$W"/probe.log "$OUT/" 2>/dev/null
  ( cd "$W" && find runs *.log -type f \( -name '*.json' -o -name '*.md' -o -name '*.log' -o -name '*.txt' -o -name '*.csv' -o -name '*.png' \) \
      -not -path '*/attacked/*' -not -path '*/deformed-masks/*' -not -path '*/deformation/*' -not -path '*/intensity/*' \
      -not -path '*/bin/*' -not -path '*/subset/*' -not -path '*/images/*' -not -path '*/masks/*' -size -3M -print0 2>/dev/null |
    tar --null -czf "$OUT/results.tar.gz" -T - )
  ls -la "$OUT"
  echo "--- runs still going:"; pgrep -af 'medseg.dll|PolypSegmentation|MLNetMedSeg.Tests|deform-table|kvasir-table' | grep -v pgrep | cut -c1-160
  for f in "$W"/run-*.log; do echo "--- $f"; tail -c 1500 "$f" | tr '\r' '\n' | grep -v '^\s*$' | tail -6; done
}

if [ "$mode" = collect ]; then
  env_setup
  while [ $(( $(date +%s) - t0 )) -lt "$wait_s" ] && pgrep -f 'medseg.dll|PolypSegmentation|MLNetMedSeg.Tests' >/dev/null; do sleep 10; done
  collect; exit 0
fi

# ------------------------------------------------------------------ unpack and probe
rm -rf "$W"; mkdir -p "$W" "$R" "$OUT"
tar -C "$W" -xJf .gpu/bundle.tar.xz || { echo "no .gpu/bundle.tar.xz: run build/gpu/bundle.sh and carry .gpu"; exit 2; }
env_setup
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  ${PYTHON:-python3} -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI)'
  command -v nvcc g++ cmake ninja; g++ --version | head -1; nvcc --version | tail -2; nproc
  dotnet --list-runtimes
} > "$W/probe.log" 2>&1
cat "$W/probe.log"

# ------------------------------------------------------------------ the shim against the CUDA libtorch
native=$repo/src/MLNetMedSeg.Torch/native
torch_dir=${TORCH_CMAKE_DIR:-$TORCH_PY/share/cmake/Torch}
so=""
if cmake -S "$native" -B "$W/native" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$torch_dir" \
     -DCMAKE_CUDA_ARCHITECTURES=native -DTORCH_CUDA_ARCH_LIST=9.0 > "$W/cmake.log" 2>&1 &&
   cmake --build "$W/native" --parallel -- -k 0 >> "$W/cmake.log" 2>&1; then
  so=$W/native/libmedseg_torch.so; echo "shim: built with CMake (Torch_DIR=$torch_dir)"
else
  echo "shim: CMake failed (cmake.log); building with g++ directly"; tail -30 "$W/cmake.log"
  abi=$(${PYTHON:-python3} -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  cuda_inc=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")/include
  mkdir -p "$W/native-gxx"
  ls "$native"/src/*.cpp | xargs -P "$(nproc)" -I{} sh -c 'g++ -std=c++17 -O2 -fPIC -fvisibility=hidden -DMT_WITH_CUDA=1 -D_GLIBCXX_USE_CXX11_ABI='"$abi"' \
      -I"'"$TORCH_PY"'/include" -I"'"$TORCH_PY"'/include/torch/csrc/api/include" -I"'"$cuda_inc"'" -I"'"$native"'/include" -I"'"$native"'/src" \
      -c {} -o "'"$W"'/native-gxx/$(basename {} .cpp).o"' > "$W/gxx.log" 2>&1
  g++ -shared -o "$W/native-gxx/libmedseg_torch.so" "$W"/native-gxx/*.o -L"$TORCH_PY/lib" -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed \
      -ltorch -ltorch_cpu -lc10 -Wl,-rpath,"$TORCH_PY/lib" >> "$W/gxx.log" 2>&1 && so=$W/native-gxx/libmedseg_torch.so
  tail -40 "$W/gxx.log"
fi
[ -n "$so" ] || { echo "shim: build failed"; cp "$W"/*.log "$OUT/"; exit 1; }
cp "$so" "$OUT/"
for d in "$W"/apps/*/; do cp "$so" "$d"; done
echo "shim ready after $(( $(date +%s) - t0 )) s"

# ------------------------------------------------------------------ benchmark on the idle GPU (RUNS holding "bench")
runs=${RUNS-"dasp diffusion64 deform kvasir"}; device=${DEVICE:-cuda}
if [[ " $runs " == *" bench "* ]]; then
  BENCH_DEVICE=$device BENCH_PYTHON=$(command -v ${PYTHON:-python3}) BENCH_BIN=$W/apps/bench BENCH_THREADS=${BENCH_THREADS:-$(nproc)} \
    BENCH_CASES=${BENCH_CASES:-"unet_train_step unet_train_step_bf16 tiny_ops seg_step_unet seg_step_unetpp seg_step_linknet seg_step_deeplabv3plus"} \
    bash build/bench.sh > "$W/bench.log" 2>&1
  cat "$W/bench.log"
fi

# ------------------------------------------------------------------ real-data runs, in the background
data=${DATA:-$W/data/kvasir160}
bg() { # name command...
  local name=$1; shift
  setsid nohup bash -c "$*" > "$W/run-$name.log" 2>&1 < /dev/null &
}
dasp_common="--data $data --size ${DASP_SIZE:-128} --epochs ${DASP_EPOCHS:-30} --batch 16 --seed 1 --device $device --robustness"
for r in $runs; do case $r in
  dasp)
    for part in ${DASP_PARTS:-"noaug,basic,fgsm,ifgsm" "generated,dasp" "pgd,diffpgd"}; do
      [ "$part" = noaug,basic,fgsm,ifgsm ] && { bg dasp-classic "dotnet $W/apps/medseg/medseg.dll dasp $dasp_common --methods $part --out $R/dasp-classic"; continue; }
      bg "dasp-${part//,/-}" "dotnet $W/apps/medseg/medseg.dll dasp $dasp_common --methods $part \
        --diffusion-epochs ${DIFFUSION_EPOCHS:-40} --diffusion-width ${DIFFUSION_WIDTH:-64} --sample-steps 25 --attack-every ${ATTACK_EVERY:-15} \
        --grid-every 10 --out $R/dasp-${part//,/-}"
    done ;;
  diffusion64)
    bg diffusion64 "dotnet $W/apps/medseg/medseg.dll dasp --data $data --size 64 --epochs 20 --seed 1 --device $device --methods generated \
      --diffusion-epochs ${LONG_DIFFUSION_EPOCHS:-300} --diffusion-width 64 --sample-steps 50 --grid-every 25 --out $R/diffusion64" ;;
  deform)
    bg deform "cd $repo && OUT=$R/deform-table MEDSEG_BIN=$W/apps/medseg PARALLEL=1 DEVICE=$device N=${DEFORM_N:-1000} SIZE=${DEFORM_SIZE:-128} EPOCHS=${DEFORM_EPOCHS:-30} \
      ATTACK_EPOCHS=${ATTACK_EPOCHS:-30} bash build/deform-table.sh $data" ;;
  kvasir)
    bg kvasir "cd $repo && OUT=$R/kvasir-table POLYP_BIN=$W/apps/polyp DEVICE=$device ${KVASIR_ENV:-} bash build/kvasir-table.sh $data" ;;
  tests-all)
    bg tests-all "cd $W/apps/MLNetMedSeg.Tests && env -u MEDSEG_NUM_THREADS ./MLNetMedSeg.Tests" ;;
  bench) ;; # ran above, in the foreground
esac; done
echo "runs started after $(( $(date +%s) - t0 )) s: $runs"
# ------------------------------------------------------------------ tests (next to the background runs: correctness, not timing)
( cd "$W/apps/MLNetMedSeg.Torch.Tests" && env -u MEDSEG_NUM_THREADS ./MLNetMedSeg.Torch.Tests ${TORCH_TESTS_FILTER:+--filter "$TORCH_TESTS_FILTER"} --output Detailed ) > "$W/test-torch.log" 2>&1
tail -8 "$W/test-torch.log"
( cd "$W/apps/MLNetMedSeg.Tests" && env -u MEDSEG_NUM_THREADS ./MLNetMedSeg.Tests --filter "TestCategory=Cuda" --output Detailed ) > "$W/test-cuda.log" 2>&1
tail -8 "$W/test-cuda.log"
grep -E "failed |Failed |error" "$W/test-torch.log" "$W/test-cuda.log" | head -30

while [ $(( $(date +%s) - t0 )) -lt "$wait_s" ] && pgrep -f 'medseg.dll|PolypSegmentation|MLNetMedSeg.Tests' >/dev/null; do sleep 10; done
collect
