"""What an optimization raises, as lucent's optvis.objectives: objectives that add, subtract and
scale (`channel(40, 3) - 0.5 * channel(40, 7)`), each a weighted sum of terms read off the
network's activations (featureviz.optim.readout):

    channel(layer, c)           the channel's mean activation
    neuron(layer, c, x, y)      the channel at one position of the layer's output (the centre without x, y)
    direction(layer, vector)    the mean over positions of the activations dotted with a vector
    diversity(layer)            minus lucid's Gram similarity of the images drawn together, so that
                                raising it pushes them apart (lucent's `diversity`)

A term's value is over the images of one render (one image, or lucent's batch drawn together):
the mean of each image's value, or for diversity one value of the batch.
"""
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Term:
    layer: int
    channel: int | None = None  # the one channel it reads; None: every channel of the layer

    def value(self, activations) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Channel(Term):
    def value(self, activations):
        return activations.channel(self.layer, self.channel).flatten(1).mean(1).float().mean()


def neuron_position(h: int, w: int, x: int | None, y: int | None) -> tuple[int, int]:
    """(row, column): the centre (lower right of the middle four on an even grid), or (y, x) clamped."""
    row = h // 2 if y is None else min(y, h - 1)
    column = w // 2 if x is None else min(x, w - 1)
    return row, column


@dataclass(frozen=True)
class Neuron(Term):
    x: int | None = None
    y: int | None = None

    def value(self, activations):
        channel = activations.channel(self.layer, self.channel)
        row, column = neuron_position(*channel.shape[-2:], self.x, self.y)
        return channel[:, 0, row, column].float().mean()


@dataclass(frozen=True)
class Direction(Term):
    vector: tuple = ()

    def value(self, activations):
        layer = activations.layer(self.layer)
        return (layer * _on(self.vector, layer.device, layer.dtype)).sum(1).flatten(1).mean(1).float().mean()


@functools.lru_cache(maxsize=64)
def _on(vector: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A direction as a (1, C, 1, 1) tensor on a device, copied there once: every step uses it (and
    a CUDA graph cannot copy from the host)."""
    return torch.tensor(vector, dtype=dtype).view(1, -1, 1, 1).to(device)


def gram_similarity(activations: torch.Tensor) -> torch.Tensor:
    """lucid's: the summed cosine similarity of the images' Gram matrices (style, in style
    transfer's sense) over ordered pairs i != j, divided by the batch size."""
    flat = activations.flatten(2)
    grams = F.normalize(flat @ flat.transpose(1, 2), p=2, dim=(1, 2)).flatten(1)
    cosines = grams @ grams.T
    return (cosines.sum() - cosines.diagonal().sum()) / len(grams)


@dataclass(frozen=True)
class Diversity(Term):
    def value(self, activations):
        return -gram_similarity(activations.layer(self.layer)).float()


class Objective:
    """A weighted sum of terms."""

    def __init__(self, terms: list[tuple[float, Term]]):
        self.terms = list(terms)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(self.terms + other.terms)

    def __mul__(self, factor: float) -> "Objective":
        return Objective([(weight * factor, term) for weight, term in self.terms])

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __sub__(self, other: "Objective") -> "Objective":
        return self + -other

    def __call__(self, activations) -> tuple[torch.Tensor, torch.Tensor]:
        """(the weighted sum, each term's value)."""
        values = [term.value(activations) for _, term in self.terms]
        total = values[0] * self.terms[0][0]
        for (weight, _), value in zip(self.terms[1:], values[1:]):
            total = total + weight * value
        return total, torch.stack(values)

    def reads(self) -> set[tuple[int, int | None]]:
        """(layer, channel) of what the terms read; channel None: the whole layer."""
        return {(term.layer, term.channel) for _, term in self.terms}


def channel(layer: int, c: int) -> Objective:
    return Objective([(1.0, Channel(layer, c))])


def neuron(layer: int, c: int, x: int | None = None, y: int | None = None) -> Objective:
    return Objective([(1.0, Neuron(layer, c, x, y))])


def direction(layer: int, vector) -> Objective:
    return Objective([(1.0, Direction(layer, None, tuple(float(v) for v in vector)))])


def diversity(layer: int) -> Objective:
    return Objective([(1.0, Diversity(layer))])
