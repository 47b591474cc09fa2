"""When several images may be optimized as one batch without changing any of them.

A batch can change an image's gradient in its last bits: oneDNN and cuDNN choose their
algorithms, and so the order of each sum, by shape, batch size included. Adam turns such bits
into a different image, and a visualize must give the same image whatever shares its batch. So
the first time a network, side and batch size meet in this process, a probe runs the network
forward and backward on a batch of random images and on each image alone, and compares outputs
and input gradients bit for bit. Kernels are chosen by shape and layout, not by values, so one
probe answers for every batch of that shape.
"""
import torch
from torch import nn

from . import precision as arithmetic

_exact = {}  # (network structure, side, batch size, device, precision, threads) -> bool


def batch_is_exact(network: nn.Module, n: int, side: int, device: torch.device, precision: str) -> bool:
    """Does `network` give each of `n` (n, 3, side, side) images, in one batch, bit for bit the
    output and input gradient it gives that image alone? Probed once per shape, then remembered."""
    key = (repr(network), side, n, str(device), precision, torch.get_num_threads())
    if key not in _exact:
        _exact[key] = _probe(network, n, side, device, precision)
    return _exact[key]


def _probe(network, n, side, device, precision):
    generator = torch.Generator().manual_seed(side)
    images = torch.randn(n, 3, side, side, generator=generator)
    upstream = None
    with torch.inference_mode(False), torch.enable_grad(), arithmetic.kernels(precision, device):
        def output_and_gradient(batch, part):
            nonlocal upstream
            x = batch.to(device).contiguous(memory_format=torch.channels_last).requires_grad_(True)
            with arithmetic.autocast(precision, device):
                y = network(x)
            if upstream is None:  # the gradient flowing into the network's output, one per image
                upstream = torch.randn(y.shape, generator=generator).to(device, y.dtype)
            y.backward(upstream[part].contiguous(memory_format=torch.channels_last))
            return y.detach(), x.grad

        together, together_gradient = output_and_gradient(images, slice(0, n))
        for i in range(n):
            alone, alone_gradient = output_and_gradient(images[i:i + 1], slice(i, i + 1))
            if not (torch.equal(alone[0], together[i]) and torch.equal(alone_gradient[0], together_gradient[i])):
                return False
    return True
