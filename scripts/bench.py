"""Time `visualize` against the seed article's algorithm as written, on the same weights, in one run.

    python -m scripts.bench [--layers 7 40] [--filter 0] [--weights random] [--served URL --key KEY]
                            [--lucent DIR] [--batching N [--batching-only]] [--malloc kept|default]
                            [--served-batch N --served URL --key KEY]

The seed runs the whole `features` every step, one filter at a time; ours runs only up to the
target layer. Both use the article's defaults (56 px, 12 scales x 20 Adam steps, x1.2, blur 5).
With --served, also times the same request through a running TorchServe (with a seed that is not
in its result cache). With --lucent, also lucent's `render_vis` on the same channel with its
defaults, lucent being installed in DIR:
    pip install --target DIR --no-deps torch-lucent==0.1.8 kornia==0.4.1 decorator
--malloc default leaves this process's glibc malloc as it is; by default it reuses freed memory
as the served worker does (featureviz.allocator), for the seed and ours alike.
With --batching N, times N filters optimized one after another against the engine's exact batch
(what `filters` and concurrent requests get) and against all N in one batch at every side, and
how far the batched images are from the single-filter ones (--batching-only: that table alone).
With --served-batch N (and --served, --key), only this: N single-filter requests of each layer
(filters 0 to N-1) sent to the server at once, so that TorchServe hands them to the handler as one
batch, against N more (the next seed) sent one after another.
Prints Markdown tables: seconds, ratios to the seed, and the activation reached vs the noise start.
"""
import argparse
import os
import platform
import resource
import sys
import time

import torch

from featureviz.attribution.activations import channel_means
from featureviz.model import weights
from featureviz.model.network import build_model
from featureviz.optim.batching import every_side
from featureviz.optim.param import Schedule
from featureviz.optim.render import visualize, visualize_many
from featureviz.service.allocator import keep_freed_memory
from scripts.peers import lucent_visualize, seed_visualize
from scripts.timing import timed


def served(url, key, layer, filter, seed):
    import requests
    response = requests.post(f"{url}/predictions/visualize", json={"layer": layer, "filter": filter, "seed": seed},
                             headers={"Authorization": f"Bearer {key}"}, timeout=3600)
    response.raise_for_status()
    return response.content


def served_batch_table(url, key, layers, n, seed):
    import concurrent.futures
    print(f"Served at {url}, seeds {seed} (at once) and {seed + 1} (one after another)\n")
    print("| layer | requests | at once (s) | one after another (s) | at once / one after another |")
    print("|---|---|---|---|---|")
    for layer in layers:
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            at_once_s, _ = timed(lambda: list(pool.map(lambda f: served(url, key, layer, f, seed), range(n))))
        one_s, _ = timed(lambda: [served(url, key, layer, f, seed + 1) for f in range(n)])
        print(f"| {layer} | {n} | {at_once_s:.1f} | {one_s:.1f} | {at_once_s / one_s:.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[7, 40])
    parser.add_argument("--filter", type=int, default=0)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--served", help="inference address of a running TorchServe, e.g. http://127.0.0.1:8080")
    parser.add_argument("--key", help="its inference key (key_file.json)")
    parser.add_argument("--seed", type=int, help="of the noise start (default: from the clock, to miss the cache)")
    parser.add_argument("--lucent", metavar="DIR", help="a folder where torch-lucent is installed")
    parser.add_argument("--batching", type=int, metavar="N", help="also time N filters one by one vs batched")
    parser.add_argument("--batching-only", action="store_true", help="only the --batching table")
    parser.add_argument("--served-batch", type=int, metavar="N",
                        help="only: N concurrent served requests vs N one after another")
    parser.add_argument("--malloc", choices=("kept", "default"), default="kept",
                        help="kept: freed memory reused, as in the served worker (default)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    if args.lucent:
        sys.path.insert(0, args.lucent)
    malloc = "freed memory kept" if args.malloc == "kept" and keep_freed_memory() else "glibc defaults"

    if args.served_batch:
        return served_batch_table(args.served, args.key, args.layers, args.served_batch, seed)
    model = build_model(weights.resolve(args.weights).state_dict())
    features = model.features
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, malloc {malloc}, weights {args.weights}, "
          f"seed {seed}\n")
    if not args.batching_only:
        visualize_table(args, model, seed)
    if args.batching:
        batching_table(features, args.layers, list(range(args.batching)), seed)


def visualize_table(args, model, seed):
    features = model.features
    header = "| layer | filter | seed article (s) | ours, engine (s) | ours / seed |"
    header += " served (s) | served / seed |" if args.served else ""
    header += " lucent render_vis (s) | lucent / seed | lucent's activation |" if args.lucent else ""
    header += " activation: noise start -> ours |"
    print(header)
    print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
    for layer in args.layers:
        seed_s, _ = timed(lambda: seed_visualize(features, layer, args.filter, seed=seed))
        ours_s, result = timed(lambda: visualize(features, layer, args.filter, seed=seed))
        row = f"| {layer} | {args.filter} | {seed_s:.1f} | {ours_s:.1f} | {ours_s / seed_s:.2f} |"
        if args.served:
            served_s, _ = timed(lambda: served(args.served, args.key, layer, args.filter, seed))
            row += f" {served_s:.1f} | {served_s / seed_s:.2f} |"
        if args.lucent:
            lucent_s, image = timed(lambda: lucent_visualize(model, layer, args.filter))
            reached = channel_means(features, layer, image[None])[0, args.filter].item()
            row += f" {lucent_s:.1f} | {lucent_s / seed_s:.2f} | {reached:.4g} |"
        row += f" {result.activation_start:.4g} -> {result.activation_final:.4g} |"
        print(row, flush=True)


def batching_table(features, layers, filters, seed):
    """N filters one after another (what `filters` did up to engine 0.3.0), in the engine's exact
    batch (render.visualize_many: batched only at the sides its probe finds batch-invariant; timed
    first with the probes, then again on the next N filters with the verdicts remembered), and
    in one batch at every side (visualize_many with every_side), against the single-filter images."""
    print("\n| layer | filters | one after another (s) | exact batch, with probes (s) | / one by one |"
          " images equal | sides batched | exact batch, probes remembered (s) | / one by one |"
          " batch at every side (s) | / one by one | images equal | max pixel difference | peak RSS (GB) |")
    print("|" + "---|" * 14)
    n = len(filters)
    for layer in layers:
        one_s, singles = timed(lambda: torch.stack([visualize(features, layer, f, seed=seed).image for f in filters]))
        exact_s, exact = timed(lambda: visualize_many(features, layer, filters, [seed] * n))
        again_s, _ = timed(lambda: visualize_many(features, layer, [f + n for f in filters], [seed] * n))
        batch_s, batch = timed(lambda: torch.stack([r.image for r in visualize_many(
            features, layer, filters, [seed] * n, batch_when=every_side)]))
        exact_equal = sum(torch.equal(r.image, single) for r, single in zip(exact, singles))
        as_png = [(img * 255).round().to(torch.uint8) for img in (singles, batch)]
        equal = sum(bool((a == b).all()) for a, b in zip(*as_png))
        sides = exact[0].batched_sides
        sides = f"{len(sides)} of {len(Schedule().sides())} ({sides[0]}-{sides[-1]} px)" if sides else "none"
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"| {layer} | {n} | {one_s:.1f} | {exact_s:.1f} | {exact_s / one_s:.2f} | {exact_equal} of {n} | "
              f"{sides} | {again_s:.1f} | {again_s / one_s:.2f} | {batch_s:.1f} | {batch_s / one_s:.2f} | "
              f"{equal} of {n} | {(singles - batch).abs().max().item():.3g} | {peak_gb:.1f} |", flush=True)


if __name__ == "__main__":
    main()
