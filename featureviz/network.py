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
    """features[:layer + 1](x)[:, channel:channel + 1], computed with less work.

    - From the last convolution on, only `channel`: the modules after it (BatchNorm, ReLU,
      max-pool) act on each channel alone, so the convolution needs only that channel's kernels.
    - Each eval-mode BatchNorm is folded into the convolution before it (an affine map of its
      output), saving a pass over the activations forward and backward.
    - A ReLU followed by a max-pool becomes the max-pool followed by the ReLU: both give
      max(0, max of the window) and the same gradient, on a quarter of the pixels.
    It shares no modules with `features` past the first convolution."""
    return nn.Sequential(*channel_trunk(features, layer), *channel_tail(features, layer, channel))


def channel_trunk(features: nn.Sequential, layer: int) -> list:
    """single_channel's modules below the last convolution: the same for every channel."""
    return _lean(list(features)[: _last_conv(features, layer)])


def channel_tail(features: nn.Sequential, layer: int, channel: int) -> list:
    """single_channel's modules from the last convolution to `layer`, for `channel` only."""
    modules = list(features)[_last_conv(features, layer): layer + 1]
    return _lean([_one_channel(m, channel) for m in modules])


def _last_conv(features: nn.Sequential, layer: int) -> int:
    return max(i for i, m in enumerate(list(features)[: layer + 1]) if isinstance(m, nn.Conv2d))


def _lean(modules: list) -> list:
    lean = []
    for module in modules:
        previous = lean[-1] if lean else None
        if isinstance(module, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d):
            lean[-1] = _fold(previous, module)
        elif isinstance(module, nn.MaxPool2d) and isinstance(previous, nn.ReLU):
            lean[-1:] = [module, nn.ReLU(inplace=previous.inplace)]
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
        return nn.ReLU()  # not in place: a hook on the previous module keeps its own output
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
