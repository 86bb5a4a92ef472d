#!/usr/bin/env bash
# test.sh — install what is missing, build (release and ASan+UBSan), run the whole suite.
#   scripts/test.sh            everything (release: all labels; asan: all but slow and check)
#   FAST=1 scripts/test.sh     the fast subset (label unit) in the release build only
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
jobs=$(nproc)

start=$(date +%s)
bash scripts/build.sh release >/dev/null
echo "build (release): $(( $(date +%s) - start )) s"
if [ -n "${FAST:-}" ]; then
  ctest --test-dir build -L unit -j"$jobs" --output-on-failure
  exit 0
fi
ctest --test-dir build -j"$jobs" --output-on-failure | tee build/ctest.log
# tests that exit 77 (the gpu label without a device, a missing tool): say how many
echo "skipped: $(grep -c '\*\*\*Skipped' build/ctest.log) (see 'The following tests did not run' above)"

start=$(date +%s)
bash scripts/build.sh asan >/dev/null
echo "build (asan+ubsan): $(( $(date +%s) - start )) s"
ctest --test-dir build-asan -LE "slow|check" -j"$jobs" --output-on-failure
