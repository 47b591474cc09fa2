"""The network: torchvision's vgg16_bn, indexed as the article counts `vgg16_bn().features`."""
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import vgg16_bn

from .image import normalize

LAYER_COUNT = 44  # features[0] .. features[43]


def build_model(state_dict, device="cpu"):
    """A frozen vgg16_bn in eval mode on `device`, from a torchvision state_dict."""
    model = vgg16_bn(weights=None)
    model.load_state_dict(state_dict, assign=True)  # no copy: keeps a memory-mapped state_dict mapped
    model.eval().requires_grad_(False)
    # channels_last: oneDNN's and cuDNN's faster convolution layout (1.4x at layer 7 on our CPUs).
    return model.to(device, memory_format=torch.channels_last)


class Normalize(nn.Module):
    """[0, 1] RGB pixels -> the network's input space, channels_last."""

    def forward(self, pixels):
        return normalize(pixels).contiguous(memory_format=torch.channels_last)


def classifier_net(model) -> nn.Sequential:
    """The whole classifier, [0, 1] pixels -> logits, sharing `model`'s weights.

    Its ReLUs are out of place, so that a hook on any module, and captum's backward hooks on the
    ReLUs, see that module's own output. `net.features[i]` is the article's layer i."""
    def out_of_place(modules):
        return nn.Sequential(*[nn.ReLU() if isinstance(m, nn.ReLU) else m for m in modules])
    return nn.Sequential(OrderedDict(normalize=Normalize(), features=out_of_place(model.features),
                                     avgpool=model.avgpool, flatten=nn.Flatten(),
                                     classifier=out_of_place(model.classifier))).eval()


def device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def truncated(features: nn.Sequential, layer: int) -> nn.Sequential:
    """The modules up to and including `layer`: later ones cannot change that layer's output."""
    return features[: layer + 1]


def single_channel(features: nn.Sequential, layer: int, channel: int) -> nn.Sequential:
    """The modules up to `layer`, computing only `channel` from the last convolution on.

    Its output is features[:layer + 1](x)[:, channel:channel + 1]: the modules after the last
    convolution (BatchNorm, ReLU, max-pool) act on each channel alone, so the convolution needs
    only that channel's kernels. It shares no modules with `features` past that convolution."""
    modules = list(features)[: layer + 1]
    last_conv = max(i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d))
    kept = modules[:last_conv]
    for module in modules[last_conv:]:
        kept.append(_one_channel(module, channel))
    return nn.Sequential(*kept)


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
        return nn.ReLU()  # not in place: a hook on the previous module keeps its own output
    return module  # max-pool: per channel already


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
