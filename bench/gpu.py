"""Measure `visualize` on a GPU: host syncs, repeatability, precision, batching, a whole-layer sweep,
a whole layer in groups of a fixed shape.

    python -m bench gpu [--weights random] [--sections sync repeat latency fidelity batching exact sweep groups]
                        [--fidelity-layers 7 20 30 40] [--fidelity-filters 4] [--exact-sizes 2 4 8]
                        [--sweep 512]
                        [--sweep-precision tf32] [--group-sizes 8 16 32] [--group-budget 35]
                        [--lucent] [--out FILE]

Every section prints a Markdown table (and appends it to --out). The seed article's loop is
bench.peers.seed_visualize, run with PyTorch's default cuDNN settings (TF32 convolutions, as the article's
code gets on a GPU today); ours is featureviz.optim.render.visualize in each precision of
featureviz.optim.precision. Activations are measured in strict fp32 on the returned image.
"""
import statistics
import sys
import warnings
from functools import partial

import torch

from featureviz.model import weights
from featureviz.model.network import build_model
from featureviz.attribution.activations import channel_means
from featureviz.optim import precision as arithmetic
from featureviz.optim.batching import every_side
from featureviz.optim.param.pixel import Schedule

from . import fidelity, timing
from .cli import section_parser
from .gpu_groups import section_groups
from .ours import visualize, visualize_many
from .peers import lucent_visualize, seed_visualize
from .table import Report

VARIANTS = [("tf32", False), ("fp32", True), ("tf32", True), ("bf16", True)]  # (precision, CUDA graphs)
timed = partial(timing.timed, device="cuda")


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


def section_sync(report, features):
    """Syncs counted by CUDA's sync debug mode for 5 and for 10 Adam steps per scale: the
    difference is what the inner loop adds."""
    counts = {}
    for steps in (5, 10):
        schedule = Schedule(upscaling_steps=3, opt_steps=steps)
        visualize(features, 40, 0, schedule, precision="tf32")  # warm
        counts[steps] = host_syncs(lambda: visualize(features, 40, 0, schedule, precision="tf32"))
    report.say("### Host syncs (layer 40, 3 scales, tf32, CUDA graphs)\n")
    report.rows(["Adam steps per scale", "syncs in one visualize"], [(k, v) for k, v in counts.items()])
    report.say(f"Syncs added by 15 more optimization steps: {counts[10] - counts[5]}.\n")


def section_repeat(report, features):
    rows = []
    for precision in arithmetic.PRECISIONS:
        a = visualize(features, 40, 3, precision=precision, seed=5).image
        b = visualize(features, 40, 3, precision=precision, seed=5).image
        rows.append((precision, bool(torch.equal(a, b)), f"{(a - b).abs().max().item():.3g}"))
    report.say("### The same request twice (layer 40, filter 3, seed 5)\n")
    report.rows(["precision", "images bitwise equal", "max pixel difference"], rows)


def section_latency(report, features, seed, layers, lucent_model=None):
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
            reached = channel_means(features, layer, image[None])[0, 0].item()
            row += [f"{lucent_s:.2f} ({lucent_s / seed_s:.2f})", f"{reached:.4g}"]
        rows.append(row)
    report.say(f"### One filter (filter 0, seed {seed}, article defaults): seconds (ratio to the seed)\n")
    header = ["layer", "seed article (s)", "seed's activation"]
    for precision, graphs in VARIANTS:
        name = precision + ("" if graphs else ", no graphs")
        header += [f"ours {name} (s)", f"activation {name}"]
    if lucent_model is not None:
        header += ["lucent render_vis (s)", "lucent's activation"]
    report.rows(header, rows)


def section_fidelity(report, features, seed, layers, n_filters):
    fidelity.report(report, features, seed, layers, list(range(n_filters)), ["tf32", "bf16"])
    report.say()


def section_batching(report, features, seed, layer, sizes):
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
    report.say(f"### Filters in one batch vs one after another (layer {layer}, seed {seed})\n")
    report.rows(["precision", "batch", "batch (s)", "per filter, batched (s)", "per filter, one by one (s)",
                 "images equal to single", "max pixel difference", "peak GPU memory (GiB)"], rows)


def section_exact(report, features, seed, layer, sizes, precision="tf32"):
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
    report.say(f"### Exact batches (visualize_many) vs one after another (layer {layer}, {precision}, graphs, "
               f"seed {seed})\n")
    report.rows(["filters", "one after another (s)", "exact batch (s)", "batch / one by one", "sides batched",
                 "images equal to single"], rows)


def section_sweep(report, features, seed, layer, count, precision):
    total, reached = timed(lambda: [visualize(features, layer, f, seed=seed, precision=precision).activation_final
                                    for f in range(count)])
    report.say(f"### Sweep: every filter of layer {layer} one after another ({precision}, seed {seed})\n")
    report.rows(["filters", "total (s)", "per filter (s)", "mean activation reached", "min", "max"],
                [(count, f"{total:.1f}", f"{total / count:.3f}", f"{statistics.mean(reached):.4g}",
                  f"{min(reached):.4g}", f"{max(reached):.4g}")])


def main(argv=None):
    parser = section_parser("gpu", __doc__)
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
    parser.add_argument("--lucent", action="store_true",
                        help="also lucent's render_vis (torch-lucent, which make venv installs)")
    parser.add_argument("--out")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    report = Report(args.out)
    model = build_model(weights.resolve(args.weights).state_dict(), args.device)
    features = model.features
    props = torch.cuda.get_device_properties(0)
    report.say(f"GPU: {props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}, "
               f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, weights {args.weights}\n")
    def run(name):
        try:
            sections[name]()
        except Exception as error:  # one broken section must not cost the others' figures
            report.say(f"section {name} failed: {type(error).__name__}: {error}\n")

    sections = {
        "sync": lambda: section_sync(report, features),
        "repeat": lambda: section_repeat(report, features),
        "latency": lambda: section_latency(report, features, args.seed, args.layers,
                                           model if args.lucent else None),
        "fidelity": lambda: section_fidelity(report, features, args.seed, args.fidelity_layers,
                                             args.fidelity_filters),
        "batching": lambda: section_batching(report, features, args.seed, 40, args.batch_sizes),
        "exact": lambda: section_exact(report, features, args.seed, 40, args.exact_sizes),
        "sweep": lambda: section_sweep(report, features, args.seed, 40, args.sweep, args.sweep_precision),
        "groups": lambda: section_groups(report, features, args.seed, 40, args.sweep, args.group_sizes,
                                         args.group_budget),
    }
    for name in args.sections:
        seconds, _ = timed(lambda: run(name))
        print(f"[{name}: {seconds:.0f} s]", file=sys.stderr, flush=True)

