#!/bin/sh
# The GPU check, as one run on a GPU machine (`make gpu-check`; docs/performance.md, "On a GPU: the check"):
# bench gpu_check's one table (the seed article's loop beside ours, one filter and a whole layer served
# through the handler in tf32 and bf16, groups, the CUDA tests), then which module makes an image depend
# on its slot in a group of 16 where the probe does not trust the group (bench slots), in under 8 minutes
# on an H100 or H200. GPU_CHECK=all adds the other GPU sections (latency, repeatability, exact batches,
# precision, host syncs, group shapes): minutes more.
# The machine needs torch and torchvision (its own CUDA build will do), numpy, pillow and pytest; the
# handler's other packages come in .whl/site (`make gpu-wheels` here). Results go to $OUT (or ./gpu-check).
set -u
OUT=${OUT:-gpu-check}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=.whl/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 420 "$PYTHON" -m bench gpu_check --out "$OUT/gpu_check.md" 2>"$OUT/gpu_check.log"
for precision in tf32 bf16; do
    timeout 60 "$PYTHON" -m bench slots --precision "$precision" --group-size 16 \
        --out "$OUT/slots.md" 2>>"$OUT/gpu_check.log" | tail -14
done
if [ "${GPU_CHECK:-}" = all ]; then
    "$PYTHON" -m bench gpu --sections latency repeat exact fidelity sync groups \
        --exact-sizes 2 4 8 --group-sizes 8 16 32 --out "$OUT/bench_gpu.md" 2>&1 | tail -3
fi
