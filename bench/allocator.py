"""What glibc's malloc settings cost `visualize` on the CPU: seconds and minor page faults.

    .venv/bin/python -m bench allocator default    # glibc as it comes
    .venv/bin/python -m bench allocator kept       # featureviz.service.allocator, as the worker does

Run each in its own process (mallopt settings cannot be undone). Two default visualizations of
--layer (7), filter 0, seeded random weights; then the resident memory before and after
`release_freed_memory()`. Prints a Markdown table.
"""
import os
import resource

import torch

from featureviz.model.network import build_model
from featureviz.model.weights import random_state_dict
from featureviz.optim.param.pixel import Schedule
from featureviz.service.allocator import keep_freed_memory, release_freed_memory

from .cli import section_parser
from .ours import visualize
from .table import Report
from .timing import timed


def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None):
    parser = section_parser("allocator", __doc__)
    parser.add_argument("mode", nargs="?", choices=("kept", "default"), default="kept")
    parser.add_argument("--layer", type=int, default=7)
    parser.add_argument("--scales", type=int, default=Schedule().upscaling_steps,
                        help="of the article's schedule (default: all of them)")
    args = parser.parse_args(argv)
    applied = args.mode == "kept" and keep_freed_memory()
    features = build_model(random_state_dict(0)).features
    schedule = Schedule(upscaling_steps=args.scales)
    report = Report()
    table = report.table(["malloc", "seed", "seconds", "minor page faults", "system time (s)", "threads"])
    for seed in (1, 2):
        before = resource.getrusage(resource.RUSAGE_SELF)
        seconds, _ = timed(lambda: visualize(features, args.layer, 0, schedule, seed=seed))
        after = resource.getrusage(resource.RUSAGE_SELF)
        table.row(f"{args.mode} (applied: {applied})", seed, f"{seconds:.1f}", after.ru_minflt - before.ru_minflt,
                  f"{after.ru_stime - before.ru_stime:.1f}", torch.get_num_threads())
    resident = resident_mb()
    released = release_freed_memory()
    report.say(f"\nresident {resident:.0f} MB, after release_freed_memory() ({released}) {resident_mb():.0f} MB")
