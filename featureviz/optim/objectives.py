"""What the optimization maximizes: each image's mean activation of its own filter at a layer."""
import torch
from torch import nn

from ..model.lean import channel_tail, channel_trunk


class FilterObjective:
    """The article's loss, on model.lean's network: its trunk (shared by all filters) then each
    filter's own tail, whose output is that filter's channel at `layer`. Only what the target
    needs runs: the layers up to it, and of the last ones only the channel. `pool_kernel`: the
    max-pool + ReLU C kernel where it applies (model.pool_relu), else PyTorch's ops."""

    def __init__(self, features: nn.Sequential, layer: int, filters: list[int], pool_kernel: bool = True):
        self.trunk = nn.Sequential(*channel_trunk(features, layer, pool_kernel))
        self.tails = [nn.Sequential(*channel_tail(features, layer, f, pool_kernel)) for f in filters]

    def __call__(self, xs: list, which: list[int]) -> torch.Tensor:
        """xs: (1, 3, H, W) normalized images of the filters `which` -> their mean activations."""
        below = self.trunk(xs[0] if len(xs) == 1 else torch.cat(xs))
        return torch.stack([self.tails[i](part)[0, 0].mean().float() for i, part in zip(which, below.split(1))])
