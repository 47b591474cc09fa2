"""A worker's memory from its start, operation by operation, without a server: each operation's
service in a process of its own, built as TorchServe's worker builds it (the archive's weights
memory-mapped from a file by featureviz.model.weights.load_state_dict), then the soak's requests
(bench/soak.py: 48 px images, small visualizes) one batch at a time.

    .venv/bin/python -m bench memory [--operations saliency gradcam] [--requests 40] [--every 10]

Every --every requests (and after the first) a row: the process's resident memory and its two
kinds, from /proc/self/smaps_rollup: anonymous (the heap, tensors, libraries' data: the worker's
own) and file-backed (libraries' code, and the pages of the weights file the worker has touched,
also shown alone). The weights file is WEIGHTS= random's, written to a temporary folder, unless
--weights names a vgg16_bn state_dict file.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from .cli import section_parser
from .soak import MODELS as OPERATIONS, SMALL_VISUALIZE, photo
from .table import Report

WEIGHTS_INFO = {"source": "random", "seed": 0, "trained": False, "sha256": "0" * 64}
COLUMNS = ["operation", "requests", "seconds", "resident (MB)", "anonymous (MB)", "file-backed (MB)",
           "of it the weights file (MB)"]


def soak_request(operation: str, rng: random.Random) -> tuple:
    """(body, parts) as TorchServe hands the handler the soak's request of `operation`."""
    seed = rng.randrange(1 << 30)
    image = {"data": photo(64, seed), "size": b"48"}
    if operation == "visualize":
        return {**SMALL_VISUALIZE, "filter": rng.randrange(64), "seed": seed}, {}
    if operation == "activations":
        return None, {**image, "layer": str(rng.choice([14, 22, 32, 42])).encode()}
    if operation == "occlusion":
        return None, {**image, "window": b"24", "stride": b"12"}
    if operation == "layers":
        return {"output": "json"}, {}
    if operation == "filters":
        return {"layer": rng.choice([0, 3, 7, 10])}, {}
    return None, image  # deconv, saliency, gradcam


def memory_mb(weights_path: str) -> dict:
    """This process's resident memory: anonymous, file-backed, and the weights file's share."""
    rollup = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                rollup[parts[0].rstrip(":")] = int(parts[1]) / 1024
    weights, in_weights = 0.0, False
    target = os.path.realpath(weights_path)
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:  # a mapping's first line
                in_weights = len(parts) >= 6 and parts[5] == target
            elif in_weights and parts[0] == "Rss:":
                weights += int(parts[1]) / 1024
    return {"resident": rollup["Rss"], "anonymous": rollup["Anonymous"],
            "file": rollup["Rss"] - rollup["Anonymous"], "weights": weights}


def run_worker(operation: str, weights_path: str, requests: int, every: int):
    """In this process: the operation's service as the handler builds it, then the requests; a JSON
    line of memory at the start and at each measurement."""
    import torch

    from featureviz.model.weights import load_state_dict
    from featureviz.service.service import Service
    from featureviz.service.settings import Settings

    started = time.monotonic()
    service = Service(operation, load_state_dict(weights_path), WEIGHTS_INFO, "1.0", torch.device("cpu"),
                      Settings({"precision": "fp32", "cache_max_mb": 0}, environ={}))  # no result cache: every request computes

    def line(n):
        print(json.dumps({"n": n, "seconds": time.monotonic() - started, **memory_mb(weights_path)}), flush=True)

    line(0)
    rng = random.Random(0)
    for n in range(1, requests + 1):
        batch = service.run([service.parse(*soak_request(operation, rng))], emit=lambda *args: True)
        if batch.answers[0].status != 200:
            raise RuntimeError(f"{operation}: {batch.answers[0].status} {batch.answers[0].body[:300]!r}")
        if n == 1 or n % every == 0 or n == requests:
            line(n)


def main(argv=None):
    parser = section_parser("memory", __doc__)
    parser.add_argument("--operations", nargs="+", choices=OPERATIONS, default=OPERATIONS)
    parser.add_argument("--requests", type=int, default=40, help="per operation")
    parser.add_argument("--every", type=int, default=10, help="a row every this many requests")
    parser.add_argument("--weights", help="a vgg16_bn state_dict file (default: WEIGHTS=random's, written here)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # the child process's side
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.worker, args.weights, args.requests, args.every)
    with tempfile.TemporaryDirectory() as folder:
        weights_path = args.weights or os.path.join(folder, "vgg16_bn.pth")
        if not args.weights:
            import torch

            from featureviz.model.weights import random_state_dict
            torch.save(random_state_dict(0), weights_path)
        report = Report()
        table = report.table(COLUMNS)
        summary = []
        for operation in args.operations:
            lines = measure(operation, weights_path, args.requests, args.every)
            for point in lines:
                table.row(operation, point["n"], f"{point['seconds']:.1f}", *(f"{point[k]:.0f}" for k in
                                                                            ("resident", "anonymous", "file", "weights")))
            summary.append((operation, lines[0], lines[1], lines[-1]))
        report.say()
        report.rows(["operation", "resident at start (MB)", "after the first request", f"after {args.requests}",
                     "grown (MB)", "of it file-backed (MB)"],
                    [(op, f"{first['resident']:.0f}", f"{one['resident']:.0f}", f"{last['resident']:.0f}",
                      f"{last['resident'] - first['resident']:+.0f}", f"{last['file'] - first['file']:+.0f}")
                     for op, first, one, last in summary])


def measure(operation: str, weights_path: str, requests: int, every: int) -> list[dict]:
    """The operation's worker in a fresh process: its JSON lines."""
    out = subprocess.run([sys.executable, "-m", "bench", "memory", "--worker", operation, "--weights", weights_path,
                          "--requests", str(requests), "--every", str(every)],
                         check=True, stdout=subprocess.PIPE, text=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
