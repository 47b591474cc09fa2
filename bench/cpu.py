"""Time `visualize` against the seed article's algorithm as written, on the same weights, in one run.

    python -m bench cpu [--layers 7 40] [--filter 0] [--weights random] [--precisions fp32 bf16]
                        [--served URL --key KEY] [--lucent] [--batching N [--batching-only]] [--malloc kept|default]
                        [--served-batch N --served URL --key KEY]

The seed runs the whole `features` every step, one filter at a time; ours runs only up to the
target layer. Both use the article's defaults (56 px, 12 scales x 20 Adam steps, x1.2, blur 5).
Ours runs in each of --precisions; the table gives each one's convolution GFLOP/s against the
matrix-product peak of its arithmetic, measured in the same run.
With --served, also times the same request through a running TorchServe (with a seed that is not
in its result cache). With --lucent, also lucent's `render_vis` on the same channel with its
defaults (torch-lucent 0.1.8, which `make venv` installs; bench/peers.py stands in for its kornia).
--malloc default leaves this process's glibc malloc as it is; by default it reuses freed memory
as the served worker does (featureviz.service.allocator), for the seed and ours alike.
With --batching N, times N filters optimized one after another against the engine's exact batch
(what `filters` and concurrent requests get) and against all N in one batch at every side, and
how far the batched images are from the single-filter ones (--batching-only: that table alone).
With --served-batch N (and --served, --key), only this: N single-filter requests of each layer
(filters 0 to N-1) sent to the server at once, so that TorchServe hands them to the handler as one
batch, against N more (the next seed) sent one after another.
Prints Markdown tables: seconds, ratios to the seed, and the activation reached vs the noise start.
"""
import os
import platform
import time

import torch

from featureviz.attribution.activations import channel_means
from featureviz.model import weights
from featureviz.model.geometry import conv_flops
from featureviz.model.lean import single_channel
from featureviz.model.network import build_model
from featureviz.optim.param.pixel import Schedule
from featureviz.optim.precision import bf16_speedup, cpu_computes_bf16, default_precision
from featureviz.service.allocator import keep_freed_memory

from .cli import section_parser
from .cpu_batching import batching_table
from .ours import visualize
from .peers import lucent_visualize, seed_visualize
from .served import png_activations, served, served_batch_table
from .table import Report
from .timing import repeat, timed


def main(argv=None):
    parser = section_parser("cpu", __doc__)
    parser.add_argument("--layers", type=int, nargs="+", default=[7, 40])
    parser.add_argument("--filter", type=int, default=0)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--served", help="inference address of a running TorchServe, e.g. http://127.0.0.1:8080")
    parser.add_argument("--key", help="its inference key (key_file.json)")
    parser.add_argument("--seed", type=int, help="of the noise start (default: from the clock, to miss the cache)")
    parser.add_argument("--lucent", action="store_true",
                        help="also lucent's render_vis (torch-lucent, which make venv installs)")
    parser.add_argument("--batching", type=int, metavar="N", help="also time N filters one by one vs batched")
    parser.add_argument("--batching-only", action="store_true", help="only the --batching table")
    parser.add_argument("--served-batch", type=int, metavar="N",
                        help="only: N concurrent served requests vs N one after another")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], help="ours in each of these")
    parser.add_argument("--malloc", choices=("kept", "default"), default="kept",
                        help="kept: freed memory reused, as in the served worker (default)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    malloc = "freed memory kept" if args.malloc == "kept" and keep_freed_memory() else "glibc defaults"

    report = Report()
    if args.served_batch:
        return served_batch_table(report, args.served, args.key, args.layers, args.served_batch, seed)
    model = build_model(weights.resolve(args.weights).state_dict())
    report.say(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"torch {torch.__version__}, {torch.get_num_threads()} threads, malloc {malloc}, "
               f"weights {args.weights}, seed {seed}\n")
    if not args.batching_only:
        visualize_table(report, args, model, seed)
    if args.batching:
        batching_table(report, model.features, args.layers, list(range(args.batching)), seed)


def matmul_peaks(n=2048, repeats=5):
    """GFLOP/s of an n x n matrix product in fp32 and in bf16: what this processor can do."""
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        peaks[name] = 2 * n ** 3 / repeat(lambda: a @ b, repeats).min / 1e9
    return peaks


def ours_flops(features, layer, filter, schedule=Schedule()):
    """Convolution FLOPs of visualize: per step, the lean network forward and its input gradient
    (as much again); weights get no gradient."""
    lean = single_channel(features, layer, filter)
    return sum(2 * schedule.opt_steps * conv_flops(lean, side) for side in schedule.sides())


def seed_flops(features, layer, schedule=Schedule()):
    """The seed's: per step the whole `features` forward, the input gradient up to `layer`."""
    return sum(schedule.opt_steps * (conv_flops(features, side) + conv_flops(features[: layer + 1], side))
               for side in schedule.sides())


def visualize_table(report, args, model, seed):
    """Seconds, ratio to the seed, achieved convolution GFLOP/s (and its share of the matrix-product
    peak of the same arithmetic), and the activation gained over the noise start, as a share of the
    seed's gain: the seed article's loop, ours in each precision, served with its defaults."""
    features = model.features
    peaks = matmul_peaks()
    report.say(f"Matrix product 2048x2048 in this run: fp32 {peaks['fp32']:.0f} GFLOP/s, "
               f"bf16 {peaks['bf16']:.0f} GFLOP/s")
    capped = f" (ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']})" if os.environ.get("ONEDNN_MAX_CPU_ISA") else ""
    report.say(f"bf16 in the processor's flags: {cpu_computes_bf16()}; bf16 convolutions measured "
               f"{bf16_speedup():.2f}x as fast as fp32{capped}: auto picks {default_precision(torch.device('cpu'))}\n")
    header = ["layer", "seed article (s)", "seed GFLOP/s"]
    for precision in args.precisions:
        header += [f"ours {precision} (s)", "/ seed", f"GFLOP/s (of {precision} peak)", f"gain {precision} / seed's"]
    if args.served:
        header += ["served (s)", "/ seed", "served precision", "gain served / seed's"]
    if args.lucent:
        header += ["lucent render_vis (s)", "/ seed", "lucent's activation"]
    header += ["activation: noise start -> seed"]
    table = report.table(header)
    for layer in args.layers:
        seed_s, seed_image = timed(lambda: seed_visualize(features, layer, args.filter, seed=seed))
        seed_final = channel_means(features, layer, seed_image[None])[0, args.filter].item()
        row, start = [layer, f"{seed_s:.1f}", f"{seed_flops(features, layer) / seed_s / 1e9:.0f}"], None
        for precision in args.precisions:
            ours_s, result = timed(lambda: visualize(features, layer, args.filter, seed=seed, precision=precision))
            start = result.activation_start
            gflops = ours_flops(features, layer, args.filter) / ours_s / 1e9
            row += [f"{ours_s:.1f}", f"{ours_s / seed_s:.2f}", f"{gflops:.0f} ({gflops / peaks[precision]:.0%})",
                    f"{(result.activation_final - start) / (seed_final - start):.2f}"]
        if args.served:
            served_s, png = timed(lambda: served(args.served, args.key, layer, args.filter, seed))
            served_start, served_final, served_precision = png_activations(png)
            row += [f"{served_s:.1f}", f"{served_s / seed_s:.2f}", served_precision,
                    f"{(served_final - served_start) / (seed_final - served_start):.2f}"]
        if args.lucent:
            lucent_s, image = timed(lambda: lucent_visualize(model, layer, args.filter))
            reached = channel_means(features, layer, image[None])[0, args.filter].item()
            row += [f"{lucent_s:.1f}", f"{lucent_s / seed_s:.2f}", f"{reached:.4g}"]
        row.append(f"{start:.4g} -> {seed_final:.4g}")
        table.row(*row)
