#!/usr/bin/env bash
# One-time, idempotent machine set-up for MLNetMedSeg on Debian/Ubuntu.
# Installs only what is missing (never reinstalls), as root or through sudo:
#   python3-torch python3-numpy  PyTorch from Python: reference values for interop tests and the benchmark baseline
#   libopenblas0-pthread         an optimized BLAS for that PyTorch's matmuls (else Debian's reference BLAS: a fair
#                                baseline needs it)
# The tensor engine (TorchSharp + libtorch 2.10) and the image codecs (SkiaSharp, LibTiff.NET) come from NuGet with
# `dotnet build`; nothing native is compiled. On Debian 12 / Ubuntu 22.04 the build itself adapts TorchSharp's native
# library to the older libstdc++ (build/msbuild/TorchSharpGlibcxx.targets).
# The .NET SDK itself is not an apt package here; the script checks that `dotnet` is on PATH.
set -euo pipefail

PKGS=(python3-torch python3-numpy libopenblas0-pthread)

say() { printf '[setup] %s\n' "$*"; }

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${PKGS[@]}"; do
  if is_installed "$p"; then :; else missing+=("$p"); fi
done

if [ ${#missing[@]} -eq 0 ]; then
  say "system packages present: ${PKGS[*]}"
else
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
    say "missing packages (${missing[*]}) and neither root nor sudo is available: install them and re-run"; exit 1
  fi
  say "installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  say "packages installed"
fi

if ! command -v dotnet >/dev/null 2>&1; then
  say "the .NET SDK (dotnet, 10.0 or later) is not on PATH: install it from Microsoft's packages and re-run"; exit 1
fi
say "dotnet $(dotnet --version); python3-torch $(dpkg-query -W -f='${Version}' python3-torch 2>/dev/null || echo '?')"
say "ready (TorchSharp and libtorch are restored from NuGet by 'dotnet build')"
