#!/usr/bin/env bash
# The trainer's GPU check, for the GPU machine (Python 3.12 with torch, transformers, tokenizers,
# but no webdataset). Prepare on a CPU machine first: `make gpu-prep` builds the demo shards in
# out/shards and downloads the webdataset wheels into .whl/; carry both along.
# Then, from the repository root on the GPU machine: bash benchmarks/gpu_check.sh
# CPU dry run (trains tiny, no MFU): DEVICE=cpu STEPS=2 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
set -euo pipefail
SHARDS="${SHARDS:-out/shards}"
STEPS="${STEPS:-100}"
DEVICE="${DEVICE:-cuda}"
PYTHON="${PYTHON:-python3}"
if [ ! -f "$SHARDS/shards.json" ]; then
  echo "no shards in $SHARDS: run 'make gpu-prep' on a CPU machine and carry out/shards along" >&2
  exit 2
fi
DEPS="$(mktemp -d)"
trap 'rm -rf "$DEPS"' EXIT
if ! "$PYTHON" -c "import webdataset" 2>/dev/null; then
  ls .whl/*.whl >/dev/null 2>&1 || { echo "webdataset missing and no .whl/ (run make gpu-prep)" >&2; exit 2; }
  "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$DEPS" .whl/*.whl
  export PYTHONPATH="$DEPS${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
fi
"$PYTHON" benchmarks/gpu_check.py --shards "$SHARDS" --steps "$STEPS" --device "$DEVICE" "$@"
