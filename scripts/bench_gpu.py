"""Measure `visualize` on a GPU: host syncs, repeatability, precision, batching, a whole-layer sweep,
a whole layer in groups of a fixed shape.

    python -m scripts.bench_gpu [--weights random] [--sections sync repeat latency fidelity batching exact sweep groups]
                                [--fidelity-layers 7 20 30 40] [--fidelity-filters 4] [--exact-sizes 2 4 8]
                                [--sweep 512]
                                [--sweep-precision tf32] [--group-sizes 8 16 32] [--group-budget 35]
                                [--lucent DIR] [--out FILE]

Every section prints a Markdown table (and appends it to --out). The seed article's loop is
scripts.peers.seed_visualize, run with PyTorch's default cuDNN settings (TF32 convolutions, as the article's
code gets on a GPU today); ours is featureviz.optim.render.visualize in each precision of
featureviz.optim.precision. Activations are measured in strict fp32 on the returned image.
"""
import argparse
import statistics
import sys
import time
import warnings

import torch

from featureviz.model import weights
from featureviz.model.network import build_model
from featureviz.attribution.activations import channel_means
from featureviz.optim import precision as arithmetic
from featureviz.optim.batching import every_side
from featureviz.optim.groups import visualize_group
from featureviz.optim.param import Schedule
from featureviz.optim.render import visualize, visualize_many
from scripts import fidelity, timing
from scripts.peers import lucent_visualize, seed_visualize

OUT = None
VARIANTS = [("tf32", False), ("fp32", True), ("tf32", True), ("bf16", True)]  # (precision, CUDA graphs)


def emit(text=""):
    print(text, flush=True)
    if OUT:
        with open(OUT, "a") as f:
            f.write(text + "\n")


def table(header, rows):
    emit("| " + " | ".join(header) + " |")
    emit("|" + "---|" * len(header))
    for row in rows:
        emit("| " + " | ".join(str(c) for c in row) + " |")
    emit()


def timed(fn):
    return timing.timed(fn, "cuda")


def host_syncs(fn):
    """How many host syncs CUDA's sync debug mode reports while `fn()` runs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def section_sync(features):
    """Syncs counted by CUDA's sync debug mode for 5 and for 10 Adam steps per scale: the
    difference is what the inner loop adds."""
    counts = {}
    for steps in (5, 10):
        schedule = Schedule(upscaling_steps=3, opt_steps=steps)
        visualize(features, 40, 0, schedule, precision="tf32")  # warm
        counts[steps] = host_syncs(lambda: visualize(features, 40, 0, schedule, precision="tf32"))
    emit("### Host syncs (layer 40, 3 scales, tf32, CUDA graphs)\n")
    table(["Adam steps per scale", "syncs in one visualize"], [(k, v) for k, v in counts.items()])
    emit(f"Syncs added by 15 more optimization steps: {counts[10] - counts[5]}.\n")


def section_repeat(features):
    rows = []
    for precision in arithmetic.PRECISIONS:
        a = visualize(features, 40, 3, precision=precision, seed=5).image
        b = visualize(features, 40, 3, precision=precision, seed=5).image
        rows.append((precision, bool(torch.equal(a, b)), f"{(a - b).abs().max().item():.3g}"))
    emit("### The same request twice (layer 40, filter 3, seed 5)\n")
    table(["precision", "images bitwise equal", "max pixel difference"], rows)


def section_latency(features, seed, layers, lucent_model=None):
    rows = []
    for layer in layers:
        seed_visualize(features, layer, 0, seed=seed)  # warm: cuDNN's kernels for these shapes
        seed_s, seed_img = timed(lambda: seed_visualize(features, layer, 0, seed=seed))
        row = [layer, f"{seed_s:.2f}", f"{channel_means(features, layer, seed_img[None])[0, 0].item():.4g}"]
        for precision, graphs in VARIANTS:
            def ours():
                return visualize(features, layer, 0, seed=seed, precision=precision, cuda_graphs=graphs)
            ours()
            ours_s, result = timed(ours)
            row += [f"{ours_s:.3f} ({ours_s / seed_s:.3f})", f"{result.activation_final:.4g}"]
        if lucent_model is not None:
            lucent_s, image = timed(lambda: lucent_visualize(lucent_model, layer, 0))
            row += [f"{lucent_s:.2f} ({lucent_s / seed_s:.2f})", f"{channel_means(features, layer, image[None])[0, 0].item():.4g}"]
        rows.append(row)
    emit(f"### One filter (filter 0, seed {seed}, article defaults): seconds (ratio to the seed)\n")
    header = ["layer", "seed article (s)", "seed's activation"]
    for precision, graphs in VARIANTS:
        name = precision + ("" if graphs else ", no graphs")
        header += [f"ours {name} (s)", f"activation {name}"]
    if lucent_model is not None:
        header += ["lucent render_vis (s)", "lucent's activation"]
    table(header, rows)


def section_fidelity(features, seed, layers, n_filters):
    emit(fidelity.report(features, seed, layers, list(range(n_filters)), ["tf32", "bf16"]))


def section_batching(features, seed, layer, sizes):
    """Filters in one batch at every side against one after another: time and equality."""
    rows = []
    for precision in ("fp32", "bf16"):
        filters = list(range(8))
        single_s, singles = timed(lambda: torch.stack(
            [visualize(features, layer, f, seed=seed, precision=precision).image for f in filters]))
        for n in sizes:
            torch.cuda.reset_peak_memory_stats()
            batch_s, batch = timed(lambda: torch.stack([r.image for r in visualize_many(
                features, layer, list(range(n)), [seed] * n, precision=precision, batch_when=every_side)]))
            memory = torch.cuda.max_memory_allocated() / 2**30
            head = batch[:8].cpu()
            equal = sum(bool(torch.equal(a, b)) for a, b in zip(head, singles))
            rows.append((precision, n, f"{batch_s:.2f}", f"{batch_s / n:.3f}", f"{single_s / 8:.3f}",
                         f"{equal} of {min(n, 8)}", f"{(head - singles[:len(head)]).abs().max().item():.3g}",
                         f"{memory:.1f}"))
    emit(f"### Filters in one batch vs one after another (layer {layer}, seed {seed})\n")
    table(["precision", "batch", "batch (s)", "per filter, batched (s)", "per filter, one by one (s)",
           "images equal to single", "max pixel difference", "peak GPU memory (GiB)"], rows)


def section_exact(features, seed, layer, sizes, precision="tf32"):
    """The engine's exact batches (render.visualize_many, what `filters` and concurrent requests
    get) against the same filters one after another: time, sides batched, equality."""
    rows = []
    for n in sizes:
        filters = list(range(n))
        visualize_many(features, layer, filters, [seed] * n, precision=precision)  # the probes, cuDNN's kernels
        single_s, singles = timed(lambda: [visualize(features, layer, f, seed=seed, precision=precision).image
                                           for f in filters])
        batch_s, batch = timed(lambda: visualize_many(features, layer, filters, [seed] * n, precision=precision))
        equal = sum(torch.equal(result.image, single) for result, single in zip(batch, singles))
        sides = batch[0].batched_sides
        rows.append((n, f"{single_s:.2f}", f"{batch_s:.2f}", f"{batch_s / single_s:.2f}",
                     f"{len(sides)} of {len(Schedule().sides())}: {sides}", f"{equal} of {n}"))
    emit(f"### Exact batches (visualize_many) vs one after another (layer {layer}, {precision}, graphs, seed {seed})\n")
    table(["filters", "one after another (s)", "exact batch (s)", "batch / one by one", "sides batched",
           "images equal to single"], rows)


def section_sweep(features, seed, layer, count, precision):
    start = time.perf_counter()
    reached = [visualize(features, layer, f, seed=seed, precision=precision).activation_final for f in range(count)]
    total = time.perf_counter() - start
    emit(f"### Sweep: every filter of layer {layer} one after another ({precision}, seed {seed})\n")
    table(["filters", "total (s)", "per filter (s)", "mean activation reached", "min", "max"],
          [(count, f"{total:.1f}", f"{total / count:.3f}", f"{statistics.mean(reached):.4g}",
            f"{min(reached):.4g}", f"{max(reached):.4g}")])


def section_groups(features, seed, layer, count, sizes, budget_s, singles=8, schedule=Schedule()):
    """The issue's GPU check of fixed group shapes (docs/performance.md, "Groups of a fixed
    shape"): for each precision and group shape G, the `count` filters of `layer` in groups of G at the default schedule, as a `filters:
    "all"` request runs them (CUDA graphs, deterministic cuDNN), for at most `budget_s` seconds
    (then the total is extrapolated from the groups done, and marked so); whether an image is the
    same in another group and slot; the activation reached against single images; the single
    request's latency at shape 1 (what it runs) and of one image at shape G (the 1.3x rule)."""
    n_scales = len(schedule.sides())
    sweep_rows, invariance_rows, single_rows = [], [], []
    for precision in ("tf32", "bf16"):
        alone = {}
        visualize(features, layer, 0, schedule, seed, precision)  # warm: shape 1's kernels
        for f in range(singles):
            single_s, result = timed(lambda: visualize(features, layer, f, schedule, seed, precision))
            alone[f] = (single_s, result)
        single_s = statistics.median(s for s, _ in alone.values())
        for g in sizes:
            torch.cuda.reset_peak_memory_stats()
            done, reached, images = 0, [], {}
            start = time.perf_counter()
            while done < count and time.perf_counter() - start < budget_s:
                filters = list(range(done, min(done + g, count)))
                results = visualize_group(features, layer, filters, [seed] * len(filters), g, schedule, precision)
                reached += [r.activation_final for r in results]
                images.update({f: r for f, r in zip(filters, results) if f < singles})
                done += len(filters)
            timing.timed(lambda: None, features[0].weight.device)  # the last kernels finished
            elapsed = time.perf_counter() - start
            total = elapsed if done == count else elapsed / done * count
            memory = torch.cuda.max_memory_allocated() / 2**30
            ratio = statistics.mean(images[f].activation_final / alone[f][1].activation_final for f in images)
            sweep_rows.append((precision, g, f"{done} of {count}", f"{elapsed:.1f}",
                               f"{total:.1f}" + ("" if done == count else " (extrapolated)"), f"{total / count:.4f}",
                               f"{statistics.mean(reached):.4g}", f"{ratio:.3f}", f"{memory:.1f}"))
            # Filter 3 again: in the last slot, beside the layer's last filters, and with stand-ins.
            others = list(range(count - (g - 1), count))
            moved = visualize_group(features, layer, others + [3], [seed] * g, g, schedule, precision)[-1]
            lonely_s, lonely = timed(lambda: visualize_group(features, layer, [3], [seed], g, schedule, precision))
            first = images[3].image
            invariance_rows.append((precision, g, bool(torch.equal(moved.image, first)),
                                    bool(torch.equal(lonely[0].image, first)),
                                    f"{max((moved.image - first).abs().max().item(), (lonely[0].image - first).abs().max().item()):.3g}",
                                    bool(torch.equal(first, alone[3][1].image))))
            single_rows.append((precision, g, f"{single_s:.3f}", f"{lonely_s:.3f}", f"{lonely_s / single_s:.2f}"))
            # As it goes: a run stopped by its time limit still leaves what it measured.
            print("groups:", sweep_rows[-1], invariance_rows[-1], single_rows[-1], file=sys.stderr, flush=True)
    emit(f"### A whole layer in groups of a fixed shape (layer {layer}, {count} filters, default schedule: "
         f"{n_scales} scales, seed {seed})\n")
    table(["precision", "G", "filters done", "seconds", f"{count} filters (s)", "per filter (s)",
           "mean activation reached", f"activation / single's (filters 0-{singles - 1})", "peak GPU memory (GiB)"],
          sweep_rows)
    emit(f"### The same image in another group (filter 3, layer {layer})\n")
    table(["precision", "G", "equal in the last slot beside other filters", "equal in a group of stand-ins",
           "max pixel difference", "equal to the single request's image"], invariance_rows)
    emit(f"### One image: alone (shape 1, a single request) and at shape G (with G - 1 stand-ins)\n")
    table(["precision", "G", "shape 1 (s)", "shape G (s)", "shape G / shape 1 (single requests at shape G "
           "where at most 1.3)"], single_rows)


def main():
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="random")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sections", nargs="+",
                        default=["sync", "repeat", "latency", "fidelity", "batching", "exact", "sweep"])
    parser.add_argument("--layers", type=int, nargs="+", default=[7, 40])
    parser.add_argument("--fidelity-layers", type=int, nargs="+", default=[7, 20, 30, 40])
    parser.add_argument("--fidelity-filters", type=int, default=4)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--exact-sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--sweep", type=int, default=512)
    parser.add_argument("--sweep-precision", default="tf32")
    parser.add_argument("--group-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--group-budget", type=float, default=35, help="seconds per precision and group shape")
    parser.add_argument("--lucent", metavar="DIR", help="a folder where torch-lucent is installed")
    parser.add_argument("--out")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    OUT = args.out
    if args.lucent:
        sys.path.insert(0, args.lucent)
    model = build_model(weights.resolve(args.weights).state_dict(), args.device)
    features = model.features
    props = torch.cuda.get_device_properties(0)
    emit(f"GPU: {props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}, "
         f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, weights {args.weights}\n")
    sections = {
        "sync": lambda: section_sync(features),
        "repeat": lambda: section_repeat(features),
        "latency": lambda: section_latency(features, args.seed, args.layers, model if args.lucent else None),
        "fidelity": lambda: section_fidelity(features, args.seed, args.fidelity_layers, args.fidelity_filters),
        "batching": lambda: section_batching(features, args.seed, 40, args.batch_sizes),
        "exact": lambda: section_exact(features, args.seed, 40, args.exact_sizes),
        "sweep": lambda: section_sweep(features, args.seed, 40, args.sweep, args.sweep_precision),
        "groups": lambda: section_groups(features, args.seed, 40, args.sweep, args.group_sizes, args.group_budget),
    }
    for name in args.sections:
        start = time.perf_counter()
        try:
            sections[name]()
        except Exception as error:  # one broken section must not cost the others' figures
            emit(f"section {name} failed: {type(error).__name__}: {error}\n")
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
