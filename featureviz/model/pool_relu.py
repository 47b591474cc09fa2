"""relu(max_pool2d(x, 2, 2)) as one module: a C kernel on channels-last CPU tensors
(featureviz/model/native/pool_relu.c), PyTorch's max-pool and ReLU elsewhere. Same values and
same gradient either way; on the CPU the kernel saves most of the time these two take in a step
(docs/performance.md, "The max-pool + ReLU kernel")."""
import ctypes

import torch
import torch.nn.functional as F
from torch import nn

from . import native

# The kernel runs on one thread; PyTorch's ops use all of them, and overtake it beyond about this
# many (docs/performance.md, "The max-pool + ReLU kernel").
MAX_THREADS = 8
_DTYPES = {torch.bfloat16: 0, torch.float32: 1}


def _kernel():
    library = native.load("pool_relu")
    if library is not None and not hasattr(library, "_typed"):
        args = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 4
        for function in (library.pool_relu_forward, library.pool_relu_backward):
            function.argtypes, function.restype = args, ctypes.c_int
        library._typed = True
    return library


def kernel_available() -> bool:
    """Is the C kernel built and loaded (building it now if it was not)?"""
    return _kernel() is not None


def kernel_applies(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype in _DTYPES and x.dim() == 4 and x.shape[2] >= 2
            and x.shape[3] >= 2 and x.is_contiguous(memory_format=torch.channels_last)
            and torch.get_num_threads() <= MAX_THREADS and _kernel() is not None)


class _PoolReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        n, c, h, w = x.shape
        y = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, memory_format=torch.channels_last)
        winner = torch.empty((n, h // 2, w // 2, c), dtype=torch.uint8)
        ctx.kernel = _kernel()  # the backward pass uses this library, even if FEATUREVIZ_NATIVE changes
        _check(ctx.kernel.pool_relu_forward(_DTYPES[x.dtype], x.data_ptr(), y.data_ptr(), winner.data_ptr(),
                                            n, h, w, c))
        ctx.save_for_backward(winner)
        ctx.shape, ctx.dtype = x.shape, x.dtype
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (winner,) = ctx.saved_tensors
        grad_y = grad_y.to(ctx.dtype).contiguous(memory_format=torch.channels_last)
        grad_x = torch.empty(ctx.shape, dtype=ctx.dtype, memory_format=torch.channels_last)
        n, c, h, w = ctx.shape
        _check(ctx.kernel.pool_relu_backward(_DTYPES[ctx.dtype], grad_y.data_ptr(), grad_x.data_ptr(),
                                             winner.data_ptr(), n, h, w, c))
        return grad_x


def _check(code):
    if code != 0:
        raise RuntimeError(f"pool_relu kernel failed ({code})")


class PoolReLU(nn.Module):
    """relu(pool(x)) for a max-pool `pool`; the kernel only for VGG's 2x2, stride 2, no padding,
    and only if `kernel` (False: PyTorch's ops, what the kernel benchmark compares against)."""

    def __init__(self, pool: nn.MaxPool2d, kernel: bool = True):
        super().__init__()
        self.pool = pool
        self.fused = kernel and (_pair(pool.kernel_size) == (2, 2) and _pair(pool.stride or pool.kernel_size) == (2, 2)
                      and _pair(pool.padding) == (0, 0) and _pair(pool.dilation) == (1, 1)
                      and not pool.ceil_mode and not pool.return_indices)

    def forward(self, x):
        if self.fused and kernel_applies(x):
            return _PoolReLU.apply(x)
        return F.relu(self.pool(x), inplace=True)

    def extra_repr(self):
        return f"kernel={self.fused}"  # in batching's probe key: the two paths may batch differently


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)
