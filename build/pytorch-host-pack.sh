#!/usr/bin/env bash
# Packs medseg for a Linux x64 machine that has a CUDA PyTorch but no .NET and no NuGet access (docs/gpu-check.md):
#   OUT/dotnet.tar.xz   the .NET runtime (Microsoft.NETCore.App of this machine's dotnet)
#   OUT/medseg.tar.xz   the framework-dependent medseg build, without the CPU libtorch files (the host's torch/lib
#                       stands in for them)
#   OUT/libtorchsharp-src.tar  TorchSharp's native sources at the version the build uses, to rebuild libLibTorchSharp
#                       against the host's libtorch (build/pytorch-host-run.sh does that when asked)
#                       (IMAGENET=1 keeps the ImageNet ResNet-18, DnnImageModels/: 64 MB more, for --encoder-weights imagenet)
# and copies build/pytorch-host-run.sh beside them. Usage: build/pytorch-host-pack.sh [OUT] (default .gpu, which
# .git/info/exclude should list; the device tool carries it with `carry: [".gpu"]`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.gpu}; mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dotnet build src/MLNetMedSeg.Cli -c Release --nologo -v q >/dev/null
root=$(dirname "$(readlink -f "$(command -v dotnet)")")
mkdir -p "$tmp/dn/shared"
cp -a "$root/dotnet" "$root/host" "$tmp/dn/"
cp -a "$root/shared/Microsoft.NETCore.App" "$tmp/dn/shared/"
tar cf - -C "$tmp" dn | xz -T0 -6 > "$out/dotnet.tar.xz"
cp -a src/MLNetMedSeg.Cli/bin/Release/net10.0/linux-x64 "$tmp/app"
[ "${IMAGENET:-0}" = 1 ] || rm -rf "$tmp/app/DnnImageModels"
( cd "$tmp/app" && rm -rf libtorch*.so libc10.so libgomp* libshm.so lib*_test.so libnnapi_backend.so \
    libaoti_custom_ops.so libbackend_with_compiler.so libLdaNative.so.dbg ./*.xml ./*.pdb )
tar cf - -C "$tmp" app | xz -T0 -6 > "$out/medseg.tar.xz"
ts=$(grep -ho 'Include="TorchSharp" Version="[^"]*"' src/MLNetMedSeg/*.csproj | head -1 | sed 's/.*Version="//; s/"//')
mirror=${TORCHSHARP_SRC:-/work/.mirror/dotnet+TorchSharp/repo}
if [ -d "$mirror" ]; then git -C "$mirror" archive HEAD src/Native > "$out/libtorchsharp-src.tar"
else echo "no TorchSharp source at $mirror (TORCHSHARP_SRC): the host can only use the stock native library" >&2; fi
cp build/pytorch-host-run.sh "$out/"
echo "packed medseg (TorchSharp $ts) into $out: $(du -sh "$out" | cut -f1)"
