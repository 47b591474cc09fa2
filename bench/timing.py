"""Wall-clock timing for every benchmark section: a callable run once or repeated, the clock read
after all of its GPU kernels finished where it runs on a GPU."""
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch


def _synchronize(device):
    if torch.device(device or "cpu").type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device=None):
    """(seconds, fn()): on a CUDA device, until all of fn's kernels finished."""
    _synchronize(device)
    start = time.perf_counter()
    result = fn()
    _synchronize(device)
    return time.perf_counter() - start, result


@dataclass
class Repeated:
    median: float  # seconds
    min: float
    result: Any  # of the last run


def repeat(fn, repeats: int = 5, warmup: int = 1, device=None) -> Repeated:
    """fn run `warmup` times untimed (caches, kernel choices), then `repeats` times, each timed."""
    for _ in range(warmup):
        fn()
    seconds, result = [], None
    for _ in range(repeats):
        s, result = timed(fn, device)
        seconds.append(s)
    return Repeated(statistics.median(seconds), min(seconds), result)
