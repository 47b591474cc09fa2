"""What glibc's malloc settings cost `visualize` on the CPU: seconds and minor page faults.

    .venv/bin/python -m scripts.bench_malloc default    # glibc as it comes
    .venv/bin/python -m scripts.bench_malloc kept       # featureviz.service.allocator, as the worker does

Run each in its own process (mallopt settings cannot be undone). Two default visualizations of
layer 7, filter 0, seeded random weights; then the resident memory before and after
`release_freed_memory()`. Prints Markdown table rows.
"""
import os
import resource
import sys
import time

import torch

from featureviz.model.network import build_model
from featureviz.model.weights import random_state_dict
from featureviz.optim.render import visualize
from featureviz.service.allocator import keep_freed_memory, release_freed_memory


def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "kept"
    if mode not in ("kept", "default"):
        sys.exit("usage: bench_malloc.py kept|default")
    applied = mode == "kept" and keep_freed_memory()
    features = build_model(random_state_dict(0)).features
    for seed in (1, 2):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        visualize(features, 7, 0, seed=seed)
        seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        print(f"| {mode} (applied: {applied}) | {seed} | {seconds:.1f} | {after.ru_minflt - before.ru_minflt} | "
              f"{after.ru_stime - before.ru_stime:.1f} | {torch.get_num_threads()} |", flush=True)
    resident = resident_mb()
    released = release_freed_memory()
    print(f"\nresident {resident:.0f} MB, after release_freed_memory() ({released}) {resident_mb():.0f} MB")


if __name__ == "__main__":
    main()
