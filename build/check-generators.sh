#!/usr/bin/env bash
# Checks a generator model (a `medseg generate --save-model` zip, e.g. data/models/kvasir-64-generators.zip): draws
# COUNT pairs with `medseg generate --model`, then build/tools/CheckGenerators compares them with real pairs:
#   - sample grids: OUT/generated/grid.png (16 generated pairs, mask | image) and OUT/real-grid.png (16 real pairs);
#   - the generated masks' foreground-fraction distribution against the real masks' (two-sample Kolmogorov–Smirnov D
#     and p-value), and the share of empty masks;
#   - MS-SSIM diversity (mean over random pairs; lower = more diverse) of generated and of real images and masks;
#   - the Fréchet ResNet-18 distance (ImageNet ResNet-18 pooled features, 224 px; not FID) between real and generated
#     images, and, with REFERENCE, between the real images and COUNT other real images (the floor for that set size).
# Writes OUT/checks.json and OUT/checks.md (and prints the markdown).
#
# Usage: build/check-generators.sh MODEL.zip [NAME]
# Environment: REAL (data/kvasir-seg-sample: real pairs the generators never saw), REFERENCE (optional: other real
#   pairs, e.g. the generators' training set runs/generators/data), COUNT (200), SIZE (64, the models' size), SEED (0),
#   OUT (runs/generator-checks/NAME), DEVICE (cpu), GENERATED (a folder of pairs already drawn from MODEL with
#   `medseg generate --model MODEL --count COUNT --seed SEED`, e.g. on a GPU: used instead of drawing). Runs under `nice -n 19`.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: build/check-generators.sh MODEL.zip [NAME]}
name=${2:-$(basename "$model" .zip)}
real=${REAL:-data/kvasir-seg-sample}
reference=${REFERENCE:-}
count=${COUNT:-200}
size=${SIZE:-64}
seed=${SEED:-0}
out=${OUT:-runs/generator-checks/$name}
device=${DEVICE:-cpu}
[ -f "$model" ] || { echo "check-generators: no model file '$model'" >&2; exit 1; }
nice -n 19 dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
nice -n 19 dotnet build build/tools/CheckGenerators -c Release --nologo -v q >/dev/null
mkdir -p "$out"
if [ -n "${GENERATED:-}" ]; then
  # Pairs drawn earlier (e.g. on a GPU) with the same command: `medseg generate --model MODEL --count COUNT --seed SEED`.
  [ -d "$GENERATED/images" ] && [ -d "$GENERATED/masks" ] || { echo "check-generators: GENERATED='$GENERATED' has no images/ and masks/" >&2; exit 1; }
  rm -rf "$out/generated"; cp -r "$GENERATED" "$out/generated"
  echo "check-generators: using the $(ls "$out/generated/images" | wc -l) pairs of $GENERATED" >&2
else
  rm -rf "$out/generated"
  start=$(date +%s)
  nice -n 19 src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64/medseg generate --model "$model" --count "$count" --seed "$seed" \
    --device "$device" --out "$out/generated" 2>"$out/generate.log"
  echo "check-generators: drew $count pairs in $(( $(date +%s) - start )) s" >&2
fi
ref_args=()
[ -n "$reference" ] && ref_args=(--reference "$reference")
nice -n 19 build/tools/CheckGenerators/bin/Release/net10.0/linux-x64/CheckGenerators --real "$real" --generated "$out/generated" \
  --out "$out" --size "$size" --seed "$seed" --name "$name" "${ref_args[@]}"
