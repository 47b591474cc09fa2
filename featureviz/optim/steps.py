"""The inner loop of one scale: Adam steps on the pixels, each raising the objective."""
import torch

from . import precision as arithmetic

WEIGHT_DECAY = 1e-6  # as the article


def adams(xs, schedule, **options):
    # One Adam per image, as alone: same state, same tensor shapes, so the same arithmetic.
    return [torch.optim.Adam([x], lr=schedule.lr, weight_decay=WEIGHT_DECAY, **options) for x in xs]


def step(objective, xs, which, optimizers, precision):
    """One Adam step on the pixels `xs`; returns their objectives' values."""
    with arithmetic.autocast(precision, xs[0].device):
        values = objective(xs, which)
        loss = -values.sum()  # each image's gradient is that of its own -objective
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()
    return values


def optimize(objective, xs, which, schedule, precision):
    """`schedule.opt_steps` Adam steps of the images `xs`; the objectives' values at the last."""
    optimizers = adams(xs, schedule)
    for _ in range(schedule.opt_steps):
        for optimizer in optimizers:
            optimizer.zero_grad()
        values = step(objective, xs, which, optimizers, precision)
    return values.detach()
