#!/usr/bin/env bash
# The trainer's GPU check, for the GPU machine (Python 3.12 with torch, transformers, tokenizers,
# but no webdataset). Prepare on a CPU machine first: `make gpu-prep` builds the demo shards in
# out/shards and downloads the webdataset wheels into .whl/; carry both along.
# Then, from the repository root on the GPU machine: bash benchmarks/gpu_check.sh
set -euo pipefail
SHARDS="${SHARDS:-out/shards}"
STEPS="${STEPS:-100}"
DEPS="$(mktemp -d)"
if ! python3 -c "import webdataset" 2>/dev/null; then
  python3 -m pip install --quiet --no-index --no-deps --target "$DEPS" .whl/*.whl
  export PYTHONPATH="$DEPS${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 benchmarks/gpu_check.py --shards "$SHARDS" --steps "$STEPS" --device cuda "$@"
