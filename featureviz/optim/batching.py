"""When several images may be optimized as one batch without changing any of them.

A batch can change an image's gradient in its last bits: oneDNN and cuDNN choose their
algorithms, and so the order of each sum, by shape, batch size included; and a kernel may split
its work by position in the batch, so that an image's sums also depend on its slot. Adam turns
such bits into a different image, and a visualize must give the same image whatever shares its
batch. So the first time a network, side and batch size meet in this process, a probe runs the
network forward and backward on random images and compares outputs and input gradients bit for
bit: `batch_is_exact`, each image in the batch against it alone (what single requests optimized
together need); `slots_are_exact`, one image beside others in the first slot, in the last, and
in a batch of its own copies (what groups of a fixed shape need, optim.groups). Kernels are
chosen, and work split, by shape and layout, not by values, so one probe answers for every batch
of that shape.
"""
import torch
from torch import nn

from ..gradients import gradients
from . import precision as arithmetic

_exact = {}  # (network structure, side, batch size, device, precision, threads) -> bool


def batch_is_exact(network: nn.Module, n: int, side: int, device: torch.device, precision: str) -> bool:
    """Does `network` give each of `n` (n, 3, side, side) images, in one batch, bit for bit the
    output and input gradient it gives that image alone? Probed once per shape, then remembered."""
    key = (repr(network), side, n, str(device), precision, torch.get_num_threads())
    if key not in _exact:
        _exact[key] = _probe(network, n, side, device, precision)
    return _exact[key]


def slots_are_exact(network: nn.Module, n: int, side: int, device: torch.device, precision: str) -> bool:
    """Does `network` give an image in a batch of `n` (n, 3, side, side) images bit for bit the
    same output and input gradient whatever its neighbours and its slot? Probed once per shape."""
    key = ("slots", repr(network), side, n, str(device), precision, torch.get_num_threads())
    if key not in _exact:
        _exact[key] = n == 1 or _slots_probe(network, n, side, device, precision)
    return _exact[key]


def _slots_probe(network, n, side, device, precision):
    generator = torch.Generator().manual_seed(side)
    one, neighbours, others = (torch.randn(k, 3, side, side, generator=generator).to(device) for k in (1, n - 1, n - 1))
    upstream = {}  # the gradient into the network's output: the image's own, its neighbours'

    def arranged(order):
        def upstream_for(y):
            if not upstream:
                upstream["one"], upstream["neighbours"], upstream["others"] = (
                    torch.randn(k, *y.shape[1:], generator=generator).to(device, y.dtype) for k in (1, n - 1, n - 1))
            return torch.cat([upstream[part] for part in order])
        return upstream_for

    parts = {"one": one, "neighbours": neighbours, "others": others}
    seen = []
    for order, slots in ((("one", "neighbours"), [0]), (("others", "one"), [n - 1]), (("one",) * n, range(n))):
        output, gradient = output_and_gradient(network, torch.cat([parts[p] for p in order]), precision,
                                               arranged(order))
        seen += [(output[k], gradient[k]) for k in slots]
    return all(torch.equal(o, seen[0][0]) and torch.equal(g, seen[0][1]) for o, g in seen[1:])


def _probe(network, n, side, device, precision):
    generator = torch.Generator().manual_seed(side)
    images = torch.randn(n, 3, side, side, generator=generator).to(device)
    upstream = None  # the gradient flowing into the network's output, one per image

    def upstream_for(y):
        nonlocal upstream
        if upstream is None:
            upstream = torch.randn(y.shape, generator=generator).to(device, y.dtype)
        return upstream

    together, together_gradient = output_and_gradient(network, images, precision, upstream_for)
    for i in range(n):
        alone, alone_gradient = output_and_gradient(network, images[i:i + 1], precision,
                                                    lambda y: upstream[i:i + 1])
        if not (torch.equal(alone[0], together[i]) and torch.equal(alone_gradient[0], together_gradient[i])):
            return False
    return True


def output_and_gradient(network, images: torch.Tensor, precision: str, upstream=torch.ones_like):
    """network(images) and the gradient of sum(output * upstream(output)) with respect to the
    images, in `precision`, with gradients on even under inference_mode."""
    device = images.device
    with gradients(), arithmetic.kernels(precision, device):
        x = images.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        with arithmetic.autocast(precision, device):
            y = network(x)
        gradient = upstream(y)
        y.backward(gradient.contiguous(memory_format=torch.channels_last) if gradient.dim() == 4 else gradient)
    return y.detach(), x.grad


def every_side(network: nn.Module, n: int, side: int, device: torch.device, precision: str) -> bool:
    """The other policy render.render takes: all images in one batch at every side, faster where
    kernels are not batch-invariant, at the cost of images that depend on their batch."""
    return True
