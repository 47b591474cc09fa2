"""What the C kernel for max-pool + ReLU saves on the CPU, in one run.

    python -m bench kernel [--layers 7 40] [--precisions bf16 fp32] [--rounds 2]

First the operations alone, on layer 7's pooled activation (1 x 64 x 408 x 408, channels-last):
relu(max_pool2d) forward and backward by PyTorch (on 1 thread and on all) and by the C kernel
(model.pool_relu, one thread), against a one-thread copy of the same tensor (what the memory
system gives one thread). Then single Adam steps at three sides, the two alternating every few
steps (robust to the machine's speed drifting, as shared machines' does). Then default
visualizations (filter 0, the article's schedule) with PyTorch's ops and with the C kernel (the
default), interleaved over --rounds rounds; the best of each, its ratio to PyTorch's, whether the
images equal PyTorch's (the largest pixel difference) and the activation each reached.
"""
import os

import torch
import torch.nn.functional as F

from featureviz.model import pool_relu, weights
from featureviz.model.network import build_model, normalize
from featureviz.optim.objectives import channel
from featureviz.optim.param import Stage
from featureviz.optim.param.pixel import WEIGHT_DECAY, Schedule
from featureviz.optim.precision import on_threads
from featureviz.optim.readout import readout
from featureviz.optim.render import Render
from featureviz.optim.steps import adams, step
from featureviz.service.allocator import keep_freed_memory

from .cli import section_parser
from .ours import visualize
from .table import Report
from .timing import repeat, timed

VARIANTS = {"PyTorch's ops": False, "C kernel (default)": True}  # name: pool_kernel


def best_ms(fn):
    return repeat(fn, repeats=30).min * 1000


def pool_table(report):
    threads = torch.get_num_threads()
    table = report.table(["dtype", "PyTorch, 1 thread (ms)", f"PyTorch, {threads} threads (ms)",
                          "C kernel, 1 thread (ms)", f"/ PyTorch on {threads}", "kernel GB/s", "1-thread copy GB/s"])
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(1, 64, 408, 408).to(dtype).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        grad_y = torch.randn(1, 64, 204, 204).to(dtype).contiguous(memory_format=torch.channels_last)

        def pytorch():
            torch.autograd.grad(F.relu(F.max_pool2d(x, 2, 2)), x, grad_y)

        def kernel():
            torch.autograd.grad(pool_relu.PoolReLU(torch.nn.MaxPool2d(2, 2), kernel=True)(x), x, grad_y)
        with on_threads(1):
            one = best_ms(pytorch)
        every = best_ms(pytorch)
        ours = best_ms(kernel)
        size = x.numel() * x.element_size()
        # forward: read x, write y and one byte per output; backward: read both, write x's gradient
        moved = 2 * (size + size // 4 + x.numel() // 4)
        with on_threads(1):
            copy = best_ms(lambda: x.detach().clone())
        table.row(str(dtype).split(".")[1], f"{one:.2f}", f"{every:.2f}", f"{ours:.2f}", f"{ours / every:.2f}",
                  f"{moved / ours / 1e6:.0f}", f"{2 * size / copy / 1e6:.0f}")


def step_table(report, features, layers, precisions, sides=(115, 237, 408), steps=5, rounds=6):
    """One Adam step of the article's objective (filter 0), PyTorch's ops and the kernel alternating every
    `steps` steps, best of `rounds`: drift in the machine's speed hits both alike."""
    report.say()
    table = report.table(["layer", "precision", "side", "PyTorch's ops (ms/step)", "C kernel (ms/step)",
                          "/ PyTorch's"])
    for layer in layers:
        objective = channel(layer, 0)
        networks = {kernel: readout(features, [objective], pool_kernel=kernel) for kernel in (False, True)}
        for precision in precisions:
            for side in sides:
                x = normalize(torch.rand(1, 3, side, side)).contiguous(memory_format=torch.channels_last)
                x.requires_grad_(True)
                batch = [(Render(None, objective), Stage(side, [x], lambda: x, 1, Schedule().lr, WEIGHT_DECAY))]
                optimizers = adams(batch)

                def one(network):
                    optimizers[0].zero_grad()
                    step(network, batch, optimizers, precision)
                best = {}
                for _ in range(rounds):
                    for kernel, network in networks.items():
                        one(network)  # the first after a switch
                        s, _ = timed(lambda: [one(network) for _ in range(steps)])
                        best[kernel] = min(best.get(kernel, s), s)
                plain, ours = (best[k] / steps * 1000 for k in (False, True))
                table.row(layer, precision, side, f"{plain:.1f}", f"{ours:.1f}", f"{ours / plain:.2f}")


def visualize_table(report, features, layers, precisions, rounds):
    names = list(VARIANTS)
    report.say()
    table = report.table(["layer", "precision", *(f"{name} (s)" for name in names),
                          *(f"{name} / PyTorch's" for name in names[1:]), "images equal to PyTorch's",
                          "max pixel difference", "activation reached"])
    for layer in layers:
        for precision in precisions:
            seconds, results = {name: [] for name in names}, {}
            for _ in range(rounds):
                for name, kernel in VARIANTS.items():
                    s, results[name] = timed(lambda: visualize(features, layer, 0, seed=1, precision=precision,
                                                               pool_kernel=kernel))
                    seconds[name].append(s)
            best = {name: min(s) for name, s in seconds.items()}
            reference = results[names[0]]
            equal = all(torch.equal(reference.image, results[n].image) for n in names[1:])
            differs = max((reference.image - results[n].image).abs().max().item() for n in names[1:])
            reached = " / ".join(f"{results[n].activation_final:.5g}" for n in names)
            table.row(layer, precision, *(f"{best[n]:.2f}" for n in names),
                      *(f"{best[n] / best[names[0]]:.2f}" for n in names[1:]), equal, f"{differs:.2g}", reached)


def main(argv=None):
    parser = section_parser("kernel", __doc__)
    parser.add_argument("--layers", type=int, nargs="+", default=[7, 40])
    parser.add_argument("--precisions", nargs="+", default=["bf16"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sides", type=int, nargs="+", default=[115, 237, 408], help="of the single-step table")
    args = parser.parse_args(argv)
    keep_freed_memory()
    if not pool_relu.kernel_available():
        raise SystemExit("the C kernel could not be built here (see the log): nothing to compare")
    report = Report()
    report.say(f"CPU: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
               "malloc freed memory kept\n")
    pool_table(report)
    features = build_model(weights.resolve("random").state_dict()).features
    step_table(report, features, args.layers, args.precisions, tuple(args.sides))
    visualize_table(report, features, args.layers, args.precisions, args.rounds)
