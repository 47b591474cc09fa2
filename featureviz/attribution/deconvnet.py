"""ZFNet's deconvnet (Zeiler & Fergus, 2013): one activation, alone, projected back to input space.

Going down from the layer, every module is undone in turn: a max-pool by unpooling through the
switches recorded on the way up, a ReLU by a ReLU on the signal, a convolution by the transposed
convolution with the same weights, and an eval-mode BatchNorm by its affine scale (the bias, like
the convolutions' biases, is not part of the projection).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Projection:
    filter: int
    position: tuple  # (y, x) in the layer's output
    activation: float
    reconstruction: torch.Tensor  # (3, H, W) in the network's (normalized) input space


@torch.no_grad()
def project(features: nn.Sequential, layer: int, x: torch.Tensor, filter: int | None = None) -> Projection:
    """`x`: (1, 3, H, W) network input. The strongest activation of `features[layer]`, or of
    channel `filter` at its maximum position, with every other activation of the layer set to zero."""
    modules = list(features)[: layer + 1]
    switches = {}
    x = x.contiguous()
    for i, module in enumerate(modules):
        if isinstance(module, nn.MaxPool2d):
            size = x.shape[-2:]
            x, indices = F.max_pool2d(x, module.kernel_size, module.stride, module.padding, module.dilation,
                                      module.ceil_mode, return_indices=True)
            switches[i] = (indices, size)
        elif isinstance(module, nn.ReLU):
            x = F.relu(x)
        else:
            x = module(x).contiguous()
    output = x[0]
    channels, height, width = output.shape
    if filter is None:
        filter, at = divmod(int(output.argmax()), height * width)
    else:
        at = int(output[filter].argmax())
    row, col = divmod(at, width)
    value = output[filter, row, col]
    signal = torch.zeros_like(x)
    signal[0, filter, row, col] = value
    for i in reversed(range(len(modules))):
        signal = _undo(modules[i], signal, switches.get(i))
    return Projection(filter, (row, col), float(value), signal[0].float().cpu())


def _undo(module: nn.Module, signal: torch.Tensor, switch) -> torch.Tensor:
    if isinstance(module, nn.MaxPool2d):
        indices, size = switch
        return F.max_unpool2d(signal, indices, module.kernel_size, module.stride, module.padding, output_size=size)
    if isinstance(module, nn.ReLU):
        return F.relu(signal)
    if isinstance(module, nn.Conv2d):
        return F.conv_transpose2d(signal, module.weight, None, module.stride, module.padding,
                                  dilation=module.dilation)
    if isinstance(module, nn.BatchNorm2d):
        scale = module.weight / torch.sqrt(module.running_var + module.eps)
        return signal * scale.view(1, -1, 1, 1)
    raise TypeError(f"the deconvnet cannot undo {type(module).__name__}")
