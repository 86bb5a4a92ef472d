#!/usr/bin/env bash
# demo.sh — install what is missing, build, and decompose the embedded default model:
# a toy model of superposition (5 sparse features in 2 dimensions, trained by
# `pdc toy tms-5-2`), whose ground truth is one rank-1 subcomponent per feature.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh release >/dev/null
out=${PDC_DEMO_OUT:-out/demo}
echo "== pdc inspect models/tms-5-2.onnx"
build/pdc inspect models/tms-5-2.onnx
echo
echo "== pdc models/tms-5-2.onnx -o $out --config configs/tms-5-2.yaml --batch 2048 --steps 8000"
echo "   (the shipped config runs 10000 steps at batch 4096; this budget recovers the same parts)"
build/pdc models/tms-5-2.onnx -o "$out" --config configs/tms-5-2.yaml --batch 2048 --steps 8000 --force
echo
echo "== pdc eval $out"
build/pdc eval "$out"
echo
echo "== pdc inspect $out   (the recovered subcomponents: one per input feature)"
build/pdc inspect "$out"
