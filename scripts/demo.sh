#!/usr/bin/env bash
# demo.sh — install what is missing, build, and run pdc on the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh release >/dev/null
echo "== pdc inspect models/default.onnx"
build/pdc inspect models/default.onnx
echo
echo "== pdc run models/default.onnx --input x=models/default_input.npy"
build/pdc run models/default.onnx --input x=models/default_input.npy
