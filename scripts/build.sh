#!/usr/bin/env bash
# build.sh [release|asan] — configure and build into build/ or build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  # the CUDA runtime is not built with the sanitizers and its start-up trips them:
  # the ASan build has no CUDA target (cuda-emu, plain C, is in it)
  asan)    dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DPDC_SANITIZE=ON -DPDC_WITH_CUDA=OFF) ;;
  *) echo "build.sh: unknown build kind '$kind' (release|asan)" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
ninja -C "$dir" >/dev/null || ninja -C "$dir"   # rerun to show errors in full
echo "$dir"
