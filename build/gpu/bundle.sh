#!/usr/bin/env bash
# Packs what a lent GPU machine needs to run this project and its tests (build/gpu/device.sh there): the .NET runtime
# (that machine has none; it has a CUDA PyTorch, whose libtorch the shim is built against there), the built CLI, example
# and test programs (the tests as self-running MSTest executables), the imaging shim's shared libraries, jq, and
# Kvasir-SEG downscaled to 160×160 (the full data does not fit the 64 MiB a call may carry).
# Usage: build/gpu/bundle.sh — writes .gpu/bundle.tar.xz (ignored by git through .git/info/exclude); carry ".gpu".
set -euo pipefail
cd "$(dirname "$0")/../.."
ex=$(git rev-parse --git-common-dir)/info/exclude; mkdir -p "$(dirname "$ex")"
grep -qx '/.gpu/' "$ex" 2>/dev/null || echo '/.gpu/' >> "$ex"
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
mkdir -p .gpu "$stage"/{apps,lib,bin,data}

echo "bundle: building (Release; tests as MSTest runner executables)"
dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
dotnet build examples/PolypSegmentation -c Release --nologo -v q >/dev/null
dotnet build test/MLNetMedSeg.Bench -c Release --nologo -v q >/dev/null
for t in MLNetMedSeg.Torch.Tests MLNetMedSeg.Tests; do
  dotnet build "test/$t" -c GpuRunner -p:Optimize=true -p:MedSegTestRunner=true --nologo -v q >/dev/null
  cp -r "test/$t/bin/GpuRunner/net10.0" "$stage/apps/$t"
done
cp -r src/MLNetMedSeg.Cli/bin/Release/net10.0 "$stage/apps/medseg"
cp -r examples/PolypSegmentation/bin/Release/net10.0 "$stage/apps/polyp"
cp -r test/MLNetMedSeg.Bench/bin/Release/net10.0 "$stage/apps/bench"
find "$stage/apps" -name libmedseg_torch.so -delete # built there, against the CUDA libtorch

echo "bundle: .NET runtime, shared libraries, jq"
dn=$(dirname "$(readlink -f "$(command -v dotnet)")")
rt=$(ls -d "$dn"/shared/Microsoft.NETCore.App/* | sort -V | tail -1)
mkdir -p "$stage/dotnet/shared/Microsoft.NETCore.App"
cp -r "$dn/dotnet" "$dn/host" "$stage/dotnet/"; cp -r "$rt" "$stage/dotnet/shared/Microsoft.NETCore.App/"
# Everything the imaging shim and jq link to, except the C/C++ runtime that every Linux has.
for so in "$stage/apps/medseg/libmedseg_imaging.so" /usr/bin/jq; do
  ldd "$so" | awk '/=> \// {print $3}' | grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|libz)\.so' | xargs -r cp -L -t "$stage/lib"
done
cp /usr/bin/jq "$stage/bin/"

echo "bundle: Kvasir-SEG at 160x160 and the shipped sample"
src=../shared/data/kvasir-seg
if [ -d "$src/images" ]; then # all 1000 pairs, resized by the sample maker (images bilinear, masks thresholded + nearest)
  dotnet run --project build/tools/MakeSample -c Release -- "$src" "$stage/data/kvasir160" 1000 160 >/dev/null
fi
cp -r data/kvasir-seg-sample "$stage/data/"
tar -C "$stage" -cf - . | xz -T0 -6 > .gpu/bundle.tar.xz
ls -la .gpu/bundle.tar.xz
