#!/usr/bin/env bash
# Every medseg command once on a device, on the shipped sample at 32 px with tiny settings (about 2 minutes on a GPU),
# plus the CPU/device agreement of one model's held-out scores: the check that the CUDA path works end to end.
# Usage: [DEVICE=cuda] [MEDSEG="command that runs medseg"] build/gpu-smoke.sh [OUT]   (OUT: runs/gpu-smoke)
# Without MEDSEG the CLI is built here (its backend is the CPU libtorch package: for a GPU, build the CLI with
# TorchSharp-cuda-linux instead — README "Backends" — and pass it as MEDSEG). Writes OUT/summary.tsv (check, exit code,
# seconds, last line) and OUT/<check>.log; exits non-zero when a check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu-smoke}; dev=${DEVICE:-cuda}; S=data/kvasir-seg-sample
if [ -z "${MEDSEG:-}" ]; then
  dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null || exit 1
  MEDSEG="dotnet src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/medseg.dll"
fi
rm -rf "$out"; mkdir -p "$out"; sum="$out/summary.tsv"; printf 'check\trc\tseconds\tlast line\n' > "$sum"; failed=0
run() {
  local name=$1 to=$2; shift 2; local t=$(date +%s)
  timeout -k 5 "$to" $MEDSEG "$@" > "$out/$name.log" 2>&1; local rc=$?
  [ $rc -eq 0 ] || failed=$((failed + 1))
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t ))" "$(grep -v '^\[' "$out/$name.log" | tail -n 1 | cut -c1-160 | tr '\t' ' ')" | tee -a "$sum"
}
run train-unet 180 train --data $S --size 32 --epochs 2 --seed 1 --device $dev --out $out/unet.zip
run evaluate 120 evaluate --model $out/unet.zip --data $S --device $dev --out $out/eval-device.json
run evaluate-cpu 120 evaluate --model $out/unet.zip --data $S --device cpu --out $out/eval-cpu.json
run predict 120 predict --model $out/unet.zip --images $S/images --out $out/pred --device $dev
for b in unetpp linknet deeplabv3plus; do
  run train-$b 180 train --data $S --size 32 --epochs 1 --backbone $b --encoder resnet18 --encoder-weights none --device $dev --out $out/$b.zip
done
run train-cdal 180 train --data $S --size 32 --epochs 1 --backbone cdal --device $dev --out $out/cdal.zip
run train-unet-bf16 180 train --data $S --size 32 --epochs 1 --precision bfloat16 --device $dev --out $out/unet-bf16.zip
run attack-fgsm 120 attack --model $out/unet.zip --data $S --method fgsm --device $dev --out $out/att-fgsm
run attack-pgd 120 attack --model $out/unet.zip --data $S --method pgd --steps 3 --device $dev --out $out/att-pgd
run deform-attack 180 deform-attack --model $out/unet.zip --data $S --xi 1 --epochs 1 --size 32 --device $dev --out $out/deform
run generate 180 generate --data $S --size 32 --epochs 1 --mask-steps 100 --image-steps 100 --sample-steps 5 --count 4 --device $dev --save-model $out/gen.zip --out $out/gen
run attack-dasp 180 attack --model $out/unet.zip --data $S --method dasp --steps 2 --generator $out/gen.zip --device $dev --out $out/att-dasp
run dasp 300 dasp --data $S --size 32 --epochs 1 --diffusion-epochs 1 --timesteps 100 --sample-steps 5 --synthetic 1 --attack-steps 2 --methods noaug,basic,dasp --device $dev --out $out/dasp
python3 - "$out/eval-device.json" "$out/eval-cpu.json" <<'PY' | tee "$out/agreement.txt"
import json, sys
try:
    a, b = (json.load(open(p)) for p in sys.argv[1:3])
except OSError as e:
    sys.exit(f"no agreement check: {e}")
for k in ("mIoU", "mDice"):
    print(f"{k}: device {a[k]:.6f} cpu {b[k]:.6f} |diff| {abs(a[k] - b[k]):.2e}")
PY
echo "$failed check(s) failed; summary in $sum"
[ $failed -eq 0 ]
