#!/usr/bin/env bash
# Issue 15's tables (build/parallel-tables.sh: the ImageNet table and DASP's tables) on a GPU machine that has a CUDA
# PyTorch but no .NET (as docs/gpu-check.md's H200), in three steps:
#   here:      build/pytorch-host-tables.sh pack     → .gpu (runtime, medseg, TorchSharp's native sources, the 1000 pairs
#              at 128 px and the shipped generators: ≈ 47 MB) and .onnx (the ImageNet ResNet-18: 64 MB). Two folders,
#              because a device call carries at most 64 MiB: carry .gpu in the first call, .onnx in the second.
#   there (1): bash .gpu/pytorch-host-tables.sh setup   unpacks into /tmp and rebuilds libLibTorchSharp against the
#              host's libtorch (pytorch-host-run.sh)
#   there (2): bash /tmp/gt/pytorch-host-tables.sh run  (the machine kept warm between the calls; OUT: where results go)
#              puts the ImageNet weights beside medseg, draws 200 pairs from the shipped generators and trains the
#              demo's old 90-step generators (for build/check-generators.sh GENERATED=…), and runs parallel-tables.sh
#              (JOBS, DEADLINE, HARD as there) into OUT/tables.
# Environment for pack: GENERATORS_RUN (runs/generators: RUN/all-128 made by build/train-generators.sh), GENERATORS
# (data/models/kvasir-64-generators.zip).
set -euo pipefail
mode=${1:?usage: pytorch-host-tables.sh pack|setup|run}
case "$mode" in
pack)
  cd "$(dirname "$0")/.."
  run=${GENERATORS_RUN:-runs/generators}; gen=${GENERATORS:-data/models/kvasir-64-generators.zip}
  [ -d "$run/all-128/images" ] || { echo "no $run/all-128 (build/train-generators.sh makes it)" >&2; exit 1; }
  [ -f "$gen" ] || { echo "no generators at $gen" >&2; exit 1; }
  rm -rf .gpu .onnx
  bash build/pytorch-host-pack.sh .gpu
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  cp -rL "$run/all-128" "$tmp/"; cp "$gen" "$tmp/kvasir-64-generators.zip"
  tar cf .gpu/data.tar -C "$tmp" .
  cp build/pytorch-host-tables.sh .gpu/
  mkdir -p .onnx; cp -r src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/DnnImageModels .onnx/
  for d in .gpu .onnx; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
  echo "carry .gpu ($(du -sm .gpu | cut -f1) MB) in the first call, .onnx ($(du -sm .onnx | cut -f1) MB) in the second"
  ;;
setup)
  G=${G:-/tmp/gt}; rm -rf "$G"; mkdir -p "$G"
  tar xf .gpu/data.tar -C "$G"
  cp .gpu/pytorch-host-tables.sh "$G/"
  bash .gpu/pytorch-host-run.sh --version
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv || true
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || true
  nproc; ls "$G"
  ;;
run)
  set +e
  W=${W:-/tmp/medseg-host}; G=${G:-/tmp/gt}; : "${OUT:?OUT: where the results go}"
  cp -r .onnx/DnnImageModels "$W/app/"
  export DOTNET_ROOT=$W/dn PATH=$W/dn:$PATH LD_LIBRARY_PATH=$(cat "$W/ready") DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  mkdir -p "$OUT/tables"
  (command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 > "$OUT/tables/gpu.csv" 2>&1) & mon=$!
  draw() { MEDSEG_NUM_THREADS=1 timeout 200 dotnet "$W/app/medseg.dll" generate --model "$2" --count 200 --seed 0 --device "${DEVICE:-cuda}" \
    --out "$OUT/tables/drawn-$1" >> "$OUT/tables/generators.log" 2>&1; }
  ( draw shipped "$G/kvasir-64-generators.zip"
    MEDSEG_NUM_THREADS=1 timeout 300 dotnet "$W/app/medseg.dll" dasp --data data/kvasir-seg-sample --size 64 --epochs 1 --sample-steps 10 --synthetic 1 \
      --widths 16,32,64,128 --diffusion-epochs 15 --diffusion-width 16 --attack-every 10 --methods dasp --robustness false \
      --device "${DEVICE:-cuda}" --out "$G/old-demo" >> "$OUT/tables/generators.log" 2>&1 \
      && cp "$G/old-demo/model.zip" "$OUT/tables/old-demo-generators.zip" && draw old-demo "$G/old-demo/model.zip" ) & extra=$!
  MEDSEG_BIN=$W/app GENERATORS=$G/kvasir-64-generators.zip DEVICE=${DEVICE:-cuda} JOBS=${JOBS:-16} DEADLINE=${DEADLINE:-390} HARD=${HARD:-525} \
    WORK=$G/work DEVICE_NAME="${DEVICE_NAME:-one NVIDIA H200, ${JOBS:-16} runs side by side}" bash build/parallel-tables.sh "$G/all-128" "$OUT/tables"
  wait $extra 2>/dev/null; kill $mon 2>/dev/null; true
  ;;
*) echo "usage: pytorch-host-tables.sh pack|setup|run" >&2; exit 2 ;;
esac
