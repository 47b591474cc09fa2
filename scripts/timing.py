"""Wall-clock timing for the benchmarks, synchronized with the GPU where the work runs on one."""
import time

import torch


def timed(fn, device=None):
    """(seconds, fn()) — on a CUDA device, after all of fn's kernels finished."""
    sync = torch.cuda.synchronize if torch.device(device or "cpu").type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - start, result
