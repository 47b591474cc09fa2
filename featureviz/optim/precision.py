"""The arithmetic of the optimization: strict fp32, TF32 convolutions, or bf16 autocast.

On CUDA, cuDNN runs deterministic algorithms in every mode, so that a request repeated gives the
same image (the result cache and `filters` rely on that). TF32 is what PyTorch does by default for
cuDNN convolutions; "fp32" turns it off. On the CPU "tf32" is plain fp32, and bf16 runs on
oneDNN's bf16 kernels: fast where the processor computes bf16 natively (AVX512-BF16 or AMX),
emulated and slow elsewhere. Having bf16 instructions is not enough: without AMX an Intel core
runs bf16 dot products no faster than fp32 FMAs, and oneDNN's bf16 convolutions there are slower
than its fp32 ones, so `auto` measures before it picks bf16.
"""
import contextlib
import functools
import logging
import time

import torch

from ..gradients import gradients

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "tf32", "bf16")


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    return precision


def kernels(precision: str, device: torch.device):
    """cuDNN's settings for the forward and backward passes (a context manager)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True,
                                      allow_tf32=check(precision) != "fp32")


def autocast(precision: str, device: torch.device):
    """The forward pass's autocast (a context manager); the backward pass runs outside it."""
    if check(precision) != "bf16":
        return contextlib.nullcontext()
    # No cast cache: each weight is cast once per forward anyway, and CUDA graphs forbid it.
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def cpu_computes_bf16() -> bool:
    """Does this processor have bf16 arithmetic units (AVX512-BF16 or AMX), as PyTorch detects them?"""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


# bf16 must beat fp32 by this much to be picked: enough that a noisy measurement cannot flip the
# choice between replicas on one kind of machine (docs/performance.md, "On the CPU: the bf16 probe").
MIN_BF16_SPEEDUP = 1.25


@contextlib.contextmanager
def on_threads(n: int):
    """PyTorch's intra-op threads set to `n` inside the block, as they were after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def bf16_speedup(channels: int = 128, side: int = 112, rounds: int = 5) -> float:
    """fp32's time over bf16 autocast's for a VGG-like 3x3 convolution (channels-last), forward and
    input gradient: the best of `rounds`, the two alternating. On one thread: a property of the
    core's arithmetic, which other processes busy on the machine hardly change, where on all
    threads they slowed the short bf16 runs most. It draws from its own generator, and has
    gradients under the caller's no_grad or inference_mode."""
    with on_threads(1):
        return _bf16_speedup(channels, side, rounds)


def _bf16_speedup(channels, side, rounds):
    with gradients():
        generator = torch.Generator().manual_seed(0)
        weight = torch.randn(channels, channels, 3, 3, generator=generator) / (3 * channels ** 0.5)
        weight = weight.contiguous(memory_format=torch.channels_last)
        x = torch.randn(1, channels, side, side, generator=generator).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)

        def seconds(bf16: bool) -> float:
            start = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16, cache_enabled=False):
                y = torch.nn.functional.conv2d(x, weight, padding=1)
            torch.autograd.grad(y.float().sum(), x)
            return time.perf_counter() - start

        seconds(True), seconds(False)  # oneDNN builds its kernels
        best = {True: float("inf"), False: float("inf")}
        for _ in range(rounds):
            for bf16 in best:
                best[bf16] = min(best[bf16], seconds(bf16))
    return best[False] / best[True]


def default_precision(device: torch.device) -> str:
    """tf32 on a GPU: PyTorch's own default for convolutions, faster than strict fp32, as fast as
    bf16, and as close to fp32's activation as another seed. On the CPU bf16 where the processor
    computes it natively and it measures clearly faster than fp32 (bf16_speedup), strict fp32
    elsewhere. docs/performance.md, "Precision: `auto`", has the figures."""
    if device.type == "cuda":
        return "tf32"
    if not cpu_computes_bf16():
        return "fp32"
    speedup = bf16_speedup()
    precision = "bf16" if speedup >= MIN_BF16_SPEEDUP else "fp32"
    logger.info("bf16 convolutions run %.2fx as fast as fp32 on this CPU: auto precision is %s", speedup, precision)
    return precision
