"""The arithmetic of the optimization: strict fp32, TF32 convolutions, or bf16 autocast.

On CUDA, cuDNN runs deterministic algorithms in every mode, so that a request repeated gives the
same image (the result cache and `filters` rely on that). TF32 is what PyTorch does by default for
cuDNN convolutions; "fp32" turns it off. On the CPU "tf32" is plain fp32, and bf16 runs on
oneDNN's bf16 kernels: fast where the processor computes bf16 natively (AVX512-BF16 or AMX),
emulated and slow elsewhere.
"""
import contextlib

import torch

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


def default_precision(device: torch.device) -> str:
    """tf32 on a GPU: PyTorch's own default for convolutions, faster than strict fp32, as fast as
    bf16, and as close to fp32's activation as another seed. On the CPU bf16 where the processor
    computes it natively (about twice fp32's throughput there), strict fp32 elsewhere.
    docs/benchmarks.md has the figures."""
    if device.type == "cuda":
        return "tf32"
    return "bf16" if cpu_computes_bf16() else "fp32"
