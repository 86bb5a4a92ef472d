#!/usr/bin/env bash
# deps.sh — install what pdc needs on Debian 12 (idempotent; quick when all is there).
#   scripts/deps.sh          system packages for building and running
#   scripts/deps.sh --test   also the test-only Python venv (.venv: onnx, onnxruntime, numpy)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build pkg-config libprotobuf-c-dev protobuf-c-compiler
      libopenblas-dev llvm-19-dev libonnx-dev libonnx-testdata zlib1g-dev python3-venv)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
  # Test-only Python lives in its own venv; always called by path, never via PATH.
  VENV=.venv
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
    echo "deps: creating $VENV with onnx, onnxruntime, numpy"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check onnx onnxruntime numpy
  fi
fi
