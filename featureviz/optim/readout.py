"""What objectives read of the network: the activations at the layers their terms name, for a
batch of renders, computing no more than they need.

- `ChannelReadout`: every term reads one channel of the same layer (the article's objective, a
  neuron, several channels of one layer). model.lean's network: the trunk below the layer's last
  convolution once for the batch, then for each render and channel only that channel's tail.
- `LayerReadout`: anything else (a direction or diversity term, terms at several layers).
  `features` up to the deepest layer named, with out-of-place ReLUs so that the activations read
  at a shallower layer are not overwritten; every channel is computed.

A readout called on a batch gives, per render, an object the terms ask for `channel(layer, c)`
((n, 1, h, w)) or `layer(layer)` ((n, C, h, w)).
"""
import torch
from torch import nn

from ..model.lean import channel_tail, channel_trunk


class ChannelReadout:
    def __init__(self, features: nn.Sequential, layer: int, channels: set, pool_kernel: bool = True):
        self.layer = layer
        self.shared = nn.Sequential(*channel_trunk(features, layer, pool_kernel))
        self.tails = {c: nn.Sequential(*channel_tail(features, layer, c, pool_kernel)) for c in sorted(channels)}

    def __call__(self, inputs: list) -> list:
        below = self.shared(inputs[0] if len(inputs) == 1 else torch.cat(inputs))
        return [_Channels(self, part) for part in below.split([len(x) for x in inputs])]


class _Channels:
    def __init__(self, readout: ChannelReadout, below):
        self.readout, self.below, self.found = readout, below, {}

    def channel(self, layer: int, c: int):
        assert layer == self.readout.layer
        if c not in self.found:
            self.found[c] = self.readout.tails[c](self.below)
        return self.found[c]

    def layer(self, layer: int):
        raise ValueError("a channel readout computes single channels only")


class LayerReadout:
    def __init__(self, features: nn.Sequential, layers: set):
        self.layers = layers
        self.shared = nn.Sequential(*(nn.ReLU() if isinstance(m, nn.ReLU) else m
                                      for m in list(features)[: max(layers) + 1]))

    def __call__(self, inputs: list) -> list:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs)
        found = {}
        for index, module in enumerate(self.shared):
            x = module(x)
            if index in self.layers:
                found[index] = x
        sizes = [len(x) for x in inputs]
        parts = {layer: y.split(sizes) for layer, y in found.items()}
        return [_Layers({layer: parts[layer][k] for layer in found}) for k in range(len(inputs))]


class _Layers:
    def __init__(self, found: dict):
        self.found = found

    def channel(self, layer: int, c: int):
        return self.found[layer][:, c:c + 1]

    def layer(self, layer: int):
        return self.found[layer]


def readout(features: nn.Sequential, objectives: list, pool_kernel: bool = True):
    """The readout for a batch of renders' objectives."""
    reads = set().union(*(objective.reads() for objective in objectives))
    layers = {layer for layer, _ in reads}
    if len(layers) == 1 and all(channel is not None for _, channel in reads):
        return ChannelReadout(features, layers.pop(), {channel for _, channel in reads}, pool_kernel)
    return LayerReadout(features, layers)
