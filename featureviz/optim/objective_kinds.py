"""What an optimization raises, of one channel's activations (n, 1, h, w) at a layer: lucent's
`channel` (their mean) or `neuron` (the one at a position: the centre, or x, y, clamped to the
grid), negated to minimize instead."""
import torch


def neuron_position(h: int, w: int, x: int | None, y: int | None) -> tuple[int, int]:
    """(row, column): the centre (lower right of the middle four on an even grid), or (y, x) clamped."""
    row = h // 2 if y is None else min(y, h - 1)
    column = w // 2 if x is None else min(x, w - 1)
    return row, column


def channel_objective(channel: torch.Tensor, kind: str = "channel", x=None, y=None, negative=False) -> torch.Tensor:
    """(n, 1, h, w) -> (n,) values to raise."""
    if kind == "neuron":
        row, column = neuron_position(*channel.shape[-2:], x, y)
        values = channel[:, 0, row, column]
    elif kind == "channel":
        values = channel.flatten(1).mean(1)
    else:
        raise ValueError(f"unknown objective {kind!r}")
    return -values if negative else values


class ChannelObjective:
    """featureviz.optim.objectives.FilterObjective's call with a kind of objective: each image's
    value of its own filter's channel, on the same lean network (its trunk and tails)."""

    def __init__(self, filter_objective, kind: str = "channel", negative: bool = False):
        self.inner, self.kind, self.negative = filter_objective, kind, negative
        self.trunk, self.tails = filter_objective.trunk, filter_objective.tails

    def __call__(self, xs: list, which: list[int]) -> torch.Tensor:
        below = self.trunk(xs[0] if len(xs) == 1 else torch.cat(xs))
        return torch.cat([channel_objective(self.tails[i](part), self.kind, negative=self.negative).float()
                          for i, part in zip(which, below.split(1))])
