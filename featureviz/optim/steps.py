"""The inner loop of one stage: Adam steps on the parameters of a batch of renders, each step
raising every render's objective."""
import torch

from . import precision as arithmetic
from .transforms import compose


def adams(batch, **options):
    # One Adam per render, as alone: same state, same tensor shapes, so the same arithmetic.
    return [torch.optim.Adam(stage.parameters, lr=stage.lr, weight_decay=stage.weight_decay, **options)
            for _, stage in batch]


def step(network, batch, optimizers, precision):
    """One Adam step of the renders `batch` ((render, stage) pairs) on `network` (a readout);
    returns each render's terms' values."""
    inputs = [compose(render.transforms)(stage.image()) for render, stage in batch]
    with arithmetic.autocast(precision, inputs[0].device):
        activations = network(inputs)
        totals, values = zip(*(render.objective(found) for (render, _), found in zip(batch, activations)))
        loss = -torch.stack(totals).sum()  # each render's gradient is that of its own -objective
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()
    return torch.stack(values)


def optimize(network, batch, precision):
    """The stage's Adam steps for the renders `batch`; their terms' values at the last step."""
    optimizers = adams(batch)
    for _ in range(batch[0][1].steps):
        for optimizer in optimizers:
            optimizer.zero_grad()
        values = step(network, batch, optimizers, precision)
    return values.detach()
