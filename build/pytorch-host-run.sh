#!/usr/bin/env bash
# On a machine packed for by build/pytorch-host-pack.sh: unpacks the runtime and medseg into W (default /tmp/medseg-host),
# points libtorch at the host PyTorch's torch/lib, and rebuilds TorchSharp's native library against it (REBUILD=1, the
# default: TorchSharp's stock build targets one libtorch version, and on another one a silent ABI change can kill the
# process — docs/gpu-check.md saw DeepLabv3+ segfault). Then runs `medseg ARGS…`.
# TORCH_LIB overrides where libtorch is (default: the torch/lib of python3's torch).
# Usage: bash .gpu/pytorch-host-run.sh train --data … --device cuda …   (PACK: the packed folder, default this script's)
set -euo pipefail
pack=${PACK:-$(cd "$(dirname "$0")" && pwd)}; W=${W:-/tmp/medseg-host}
if [ ! -f "$W/ready" ]; then
  rm -rf "$W"; mkdir -p "$W"
  tar xJf "$pack/dotnet.tar.xz" -C "$W"; tar xJf "$pack/medseg.tar.xz" -C "$W"
  TL=${TORCH_LIB:-$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')}
  if [ "${REBUILD:-1}" = 1 ] && [ -f "$pack/libtorchsharp-src.tar" ]; then
    inc=$(dirname "$TL")/include; mkdir -p "$W/lts"; tar xf "$pack/libtorchsharp-src.tar" -C "$W/lts"
    ( cd "$W/lts/src/Native/LibTorchSharp"
      fl="-O2 -fPIC -fvisibility=hidden -D_GLIBCXX_USE_CXX11_ABI=1 -D__LINUX__ -D_NO_ASYNCRTIMP -D_NO_PPLXIMP -DNDEBUG -I.. -I. -I$inc -I$inc/torch/csrc/api/include -w"
      ls ./*.cpp | xargs -P "$(nproc)" -I{} sh -c "g++ -std=c++17 $fl -c {} -o {}.o" 
      gcc -O2 -fPIC -c crc32c.c -o crc32c.o
      g++ -shared -o libLibTorchSharp.so ./*.o -Wl,-Bsymbolic -L"$TL" -ltorch -ltorch_cpu -lc10 -Wl,-rpath,"$TL" )
    cp "$W/lts/src/Native/LibTorchSharp/libLibTorchSharp.so" "$W/app/"
    echo "pytorch-host-run: libLibTorchSharp rebuilt against $TL" >&2
  fi
  echo "$TL" > "$W/ready"
fi
export DOTNET_ROOT=$W/dn DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 LD_LIBRARY_PATH=$(cat "$W/ready")
exec "$W/dn/dotnet" "$W/app/medseg.dll" "$@"
