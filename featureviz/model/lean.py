"""The network the optimization runs: `features[:layer + 1](x)[:, channel]`, computed with less work.

- From the last convolution on, only `channel`: the modules after it (BatchNorm, ReLU, max-pool)
  act on each channel alone, so the convolution needs only that channel's kernels.
- Each eval-mode BatchNorm is folded into the convolution before it (an affine map of its output),
  saving a pass over the activations forward and backward.
- A ReLU followed by a max-pool becomes one PoolReLU, the max-pool then the ReLU: both give
  max(0, max of the window) and the same gradient, on a quarter of the pixels (on the CPU, one C
  kernel pass each way: model.pool_relu; `pool_kernel=False` keeps PyTorch's ops).
It shares no modules with `features` past the first convolution.
"""
import torch
from torch import nn

from .geometry import last_conv
from .pool_relu import PoolReLU


def single_channel(features: nn.Sequential, layer: int, channel: int) -> nn.Sequential:
    """features[:layer + 1](x)[:, channel:channel + 1], as the trunk and the channel's tail."""
    return nn.Sequential(*channel_trunk(features, layer), *channel_tail(features, layer, channel))


def channel_trunk(features: nn.Sequential, layer: int, pool_kernel: bool = True) -> list:
    """The modules below the last convolution: the same for every channel."""
    return _lean(list(features)[: last_conv(features, layer)], pool_kernel)


def channel_tail(features: nn.Sequential, layer: int, channel: int, pool_kernel: bool = True) -> list:
    """The modules from the last convolution to `layer`, for `channel` only."""
    modules = list(features)[last_conv(features, layer): layer + 1]
    return _lean([_one_channel(m, channel) for m in modules], pool_kernel)


def _lean(modules: list, pool_kernel: bool) -> list:
    lean = []
    for module in modules:
        previous = lean[-1] if lean else None
        if isinstance(module, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d):
            lean[-1] = _fold(previous, module)
        elif isinstance(module, nn.MaxPool2d) and isinstance(previous, nn.ReLU):
            lean[-1] = PoolReLU(module, pool_kernel)
        else:
            lean.append(module)
    return lean


def _one_channel(module: nn.Module, c: int) -> nn.Module:
    pick = slice(c, c + 1)
    if isinstance(module, nn.Conv2d):
        conv = nn.Conv2d(module.in_channels, 1, module.kernel_size, module.stride, module.padding,
                         module.dilation, bias=module.bias is not None)
        weight = module.weight[pick].detach().clone(memory_format=torch.channels_last)
        conv.weight = nn.Parameter(weight, requires_grad=False)
        if module.bias is not None:
            conv.bias = nn.Parameter(module.bias[pick].detach().clone(), requires_grad=False)
        return conv.to(module.weight.device)
    if isinstance(module, nn.BatchNorm2d):
        bn = nn.BatchNorm2d(1, module.eps).to(module.weight.device).eval().requires_grad_(False)
        bn.weight.copy_(module.weight[pick]), bn.bias.copy_(module.bias[pick])
        bn.running_mean.copy_(module.running_mean[pick]), bn.running_var.copy_(module.running_var[pick])
        return bn
    if isinstance(module, nn.ReLU):
        return nn.ReLU()  # not in place: the tail's output is the layer's own
    return module  # max-pool: per channel already


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution computing bn(conv(x)) for an eval-mode BatchNorm."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, device=conv.weight.device)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    folded.weight = nn.Parameter(weight.contiguous(memory_format=torch.channels_last), requires_grad=False)
    folded.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)
    return folded
