#!/usr/bin/env bash
# The GPU bench (bench/gpu.py) on a bare GPU machine that reaches no network, run in the
# repository's root with .device/ beside it (made here by `python bench/device_prepare.py`;
# the device tool carries it): the carried wheels go to /tmp/site (the machine's own NumPy
# and PyTorch stay), the imports are checked, then the bench writes its JSON, part by part,
# into $OUT (the device tool's folder that comes back) or bench/results/.
set -euo pipefail
out=${OUT:-bench/results}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .device/wheels/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import cellpose, distributed, sqlite_utils, loop.cli.main; print('imports: ok')"
# the GPU's use, each second, while the bench runs (comes back with the JSON)
nvidia-smi dmon -s um -d 1 > "$out/gpu-use.log" 2>&1 &
python3 -m bench.gpu "$out/$(date +%F)-gpu.json" --data .device/dsb256 \
    --work /tmp/loop-gpu-bench "$@" 2>&1 | tee "$out/gpu-bench.log"
