#!/usr/bin/env bash
# One-time, idempotent machine set-up for MLNetMedSeg on Debian/Ubuntu.
# Installs only what is missing (never reinstalls), as root or through sudo:
#   libtorch-dev        libtorch 1.13 (CPU, oneDNN) headers, libraries and CMake config: our tensor engine
#   cmake g++ make      to build the native shim (src/MLNetMedSeg.Torch/native), driven by `dotnet build`
#   libopenblas0-pthread an optimized, multi-threaded BLAS for libtorch's CPU matmuls
#   libjpeg62-turbo-dev libpng-dev libtiff-dev  image codecs (src/MLNetMedSeg/native)
#   python3-torch python3-numpy  the same libtorch from Python: safetensors interop tests and the benchmark baseline
# The .NET SDK itself is not an apt package here; the script checks that `dotnet` is on PATH.
set -euo pipefail

PKGS=(libtorch-dev cmake g++ make libopenblas0-pthread libjpeg62-turbo-dev libpng-dev libtiff-dev python3-torch python3-numpy)

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
say "dotnet $(dotnet --version); libtorch $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo '?')"
say "ready (the native shim is built by 'dotnet build')"
