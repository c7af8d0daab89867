#!/usr/bin/env bash
# Builds llama-cpp-python from source for this CPU with the AMX instruction sets left out, once, into a wheel
# cache keyed by version, flags and CPU; then installs that wheel into the given pip.
#
#   scripts/llama_wheel.sh PIP       build if needed, install
#   scripts/llama_wheel.sh --cflags  print the extra compiler flags (tests/test_no_amx.py checks them)
#   scripts/llama_wheel.sh --dir     print the wheel folder
#
# Why: a native build compiles ggml's AMX matrix multiply on CPUs that have AMX (Sapphire Rapids and later),
# and that code crashes on Q4_K models (docs/RELIABILITY.md, "AMX"). -mno-amx-* wins over -march=native
# whatever the order, so the rest of the native build (AVX2, AVX-512, VNNI) is kept.
set -euo pipefail
VERSION=0.3.36
case "$(uname -m)" in
  x86_64|amd64) CFLAGS_EXTRA="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" ;;
  *) CFLAGS_EXTRA="" ;;
esac
CMAKE="-DGGML_NATIVE=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
# a wheel built natively belongs to one CPU: its flags name the folder together with the build options
KEY=$( (echo "$VERSION $CMAKE $CFLAGS_EXTRA"; grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | sha1sum | cut -c1-12)
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/sofia-qa/wheels/llama-cpp-python-$VERSION-$KEY"

case "${1:-}" in
  --cflags) echo "$CFLAGS_EXTRA"; exit 0 ;;
  --dir) echo "$DIR"; exit 0 ;;
  ""|-*) echo "usage: $0 PIP | --cflags | --dir" >&2; exit 2 ;;
esac
PIP=$1
if ! ls "$DIR"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION for this CPU without AMX (about 6 minutes, once) -> $DIR"
  mkdir -p "$DIR.tmp"
  # --no-cache-dir: pip's own wheel cache is keyed by the source only and could hand back a build with AMX
  # CMake takes CFLAGS/CXXFLAGS from the environment on the first configure
  CFLAGS="$CFLAGS_EXTRA" CXXFLAGS="$CFLAGS_EXTRA" CMAKE_ARGS="$CMAKE" "$PIP" wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$DIR.tmp" "llama-cpp-python==$VERSION"
  rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"
fi
"$PIP" install --no-deps --force-reinstall "$DIR"/llama_cpp_python-"$VERSION"-*.whl
