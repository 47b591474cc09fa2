"""The network: torchvision's vgg16_bn, indexed as the article counts `vgg16_bn().features`,
and its input space (ImageNet-normalized RGB)."""
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import vgg16_bn

LAYER_COUNT = 44  # features[0] .. features[43]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(img):
    shape = (-1, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype, device=img.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype, device=img.device).view(shape)
    return mean, std


def normalize(img):
    """[0, 1] RGB (..., 3, H, W) -> the network's input space."""
    mean, std = _stats(img)
    return (img - mean) / std


def denormalize(x):
    mean, std = _stats(x)
    return x * std + mean


def skeleton() -> nn.Module:
    """vgg16_bn's modules with no weights (on the meta device): a second to build rather than the
    several that initializing 138 million random weights takes, which loading then replaces."""
    with torch.device("meta"):
        return vgg16_bn(weights=None)


def build_model(state_dict, device="cpu"):
    """A frozen vgg16_bn in eval mode on `device`, from a torchvision state_dict."""
    model = skeleton()
    model.load_state_dict(state_dict, assign=True)  # no copy: keeps a memory-mapped state_dict mapped
    model.eval().requires_grad_(False)
    # channels_last: oneDNN's and cuDNN's faster convolution layout
    # (docs/performance.md, "The lean network and channels_last").
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


@torch.no_grad()
def read_in(module: nn.Module) -> None:
    """Reads one value per memory page of `module`'s parameters: a memory-mapped state_dict's
    pages become resident now rather than at the first request that uses them, so that a worker's
    resident memory is, from its start, what it stays at (docs/reliability.md, "A worker's memory")."""
    for tensor in module.parameters():
        if tensor.device.type == "cpu" and tensor.is_contiguous():
            tensor.reshape(-1)[:: max(1, 4096 // tensor.element_size())].sum()


def device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def truncated(features: nn.Sequential, layer: int) -> nn.Sequential:
    """The modules up to and including `layer`: its output is `features[layer]`'s, and nothing
    after it (VGG's ReLUs are in place) can overwrite it."""
    return features[: layer + 1]


class Model:
    """What the operations use: `features` (the article's indexing, in-place ReLUs, for the
    optimization and the activations) and `net` (the whole classifier on [0, 1] pixels, sharing
    its weights, out-of-place ReLUs, for the attributions). `has_classifier`: whether the weights
    came with a classifier (without one its layers are zeros, and are not the model's)."""

    def __init__(self, state_dict, device="cpu", has_classifier: bool = True):
        model = build_model(state_dict, device)
        self.features = model.features
        self.net = classifier_net(model)
        self.has_classifier = has_classifier
