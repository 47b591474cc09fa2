"""Shapes of the network's layers: channels, spatial sides, the smallest input, the convolutions."""
from torch import nn


def output_channels(features: nn.Sequential, layer: int) -> int:
    """Channels of `features[layer]`'s output."""
    for module in reversed(list(features)[: layer + 1]):
        if isinstance(module, nn.Conv2d):
            return module.out_channels
    raise ValueError(f"no convolution at or before layer {layer}")


def output_side(features: nn.Sequential, layer: int, side: int) -> int:
    """Spatial side of `features[layer]`'s output for a square input of `side` pixels."""
    for module in list(features)[: layer + 1]:
        if isinstance(module, nn.MaxPool2d):
            side = (side - module.kernel_size) // module.stride + 1
        elif isinstance(module, nn.Conv2d):
            k, p, s = module.kernel_size[0], module.padding[0], module.stride[0]
            side = (side + 2 * p - k) // s + 1
    return side


def min_input_side(features: nn.Sequential, layer: int) -> int:
    """The smallest square input for which `features[layer]` has at least one pixel."""
    side = 1
    while output_side(features, layer, side) < 1:
        side += 1
    return side


def conv_layers(features: nn.Sequential) -> list[int]:
    return [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]


def last_conv(features: nn.Sequential, layer: int) -> int:
    """The index of the last convolution at or before `layer`."""
    return max(i for i in conv_layers(features) if i <= layer)


def conv_flops(modules, side: int) -> int:
    """Multiply-adds x 2 of the convolutions of `modules` (a list or nn.Sequential, run in order)
    for one square input of `side` pixels."""
    flops = 0
    # .modules(): a fused module's parts too, in order (lean.py's PoolReLU holds its max-pool).
    for module in (part for outer in modules for part in outer.modules()):
        if isinstance(module, nn.Conv2d):
            k, p, s = module.kernel_size[0], module.padding[0], module.stride[0]
            side = (side + 2 * p - k) // s + 1
            flops += 2 * module.in_channels * module.out_channels * k * k * side * side // module.groups
        elif isinstance(module, nn.MaxPool2d):
            side = (side - module.kernel_size) // module.stride + 1
    return flops
