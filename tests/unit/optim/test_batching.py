"""Several images optimized together: each must be, bit for bit, the image it is alone."""
import pytest
import torch
from torch import nn

from bench.ours import visualize, visualize_many
from featureviz.optim.batching import batch_is_exact
from featureviz.optim.param.pixel import Schedule
from featureviz.service.operations.visualize.operation import optimization_groups
from featureviz.service.operations.visualize.request import VisualizeRequest

# Sides 80, 120 and 180: on the CPUs we run on, oneDNN computes the smallest differently in a
# batch (so those images are optimized one by one there) and the largest the same.
CROSSING = Schedule(size=80, upscaling_steps=3, upscaling_factor=1.5, opt_steps=3)


@pytest.mark.slow
@pytest.mark.parametrize("layer", [7, 23])
def test_images_optimized_together_are_each_the_image_alone(features, layer):
    filters, seeds = [0, 5, 9], [1, 2, 1]
    together = visualize_many(features, layer, filters, seeds, CROSSING)
    assert 180 in together[0].batched_sides  # the largest scale did run as one batch
    for result, filter, seed in zip(together, filters, seeds):
        alone = visualize(features, layer, filter, CROSSING, seed)
        assert torch.equal(result.image, alone.image)
        assert result.activation_per_scale == alone.activation_per_scale
        assert (result.activation_start, result.activation_final) == (alone.activation_start, alone.activation_final)
        assert alone.batched_sides == []
    assert not torch.equal(together[0].image, together[2].image)  # same seed, other filter


def test_a_batch_is_trusted_only_where_the_probe_finds_it_exact():
    calls = []

    class Counted(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            calls.append(x.shape[0])
            return self.body(x)

    class MixesImages(nn.Module):  # each output depends on the other images of the batch
        def forward(self, x):
            return x - x.mean(0, keepdim=True)

    # (Not a convolution: even a 1x1 one over 12 px gives other last bits in a batch on our CPUs.)
    pixelwise = Counted(nn.Sequential(nn.Tanh(), nn.Hardtanh(-0.5, 0.5)))
    assert batch_is_exact(pixelwise, 3, 12, torch.device("cpu"), "fp32")
    assert calls == [3, 1, 1, 1]  # the batch, then each image alone
    assert batch_is_exact(pixelwise, 3, 12, torch.device("cpu"), "fp32")
    assert calls == [3, 1, 1, 1]  # remembered, not probed again
    assert batch_is_exact(pixelwise, 2, 12, torch.device("cpu"), "fp32") and calls[4:] == [2, 1, 1]
    assert not batch_is_exact(nn.Sequential(MixesImages()), 3, 12, torch.device("cpu"), "fp32")


def test_batches_hold_one_layer_and_schedule_in_order_of_arrival_and_at_most_max_images():
    other = Schedule(size=40)
    requests = [VisualizeRequest(7, 1, Schedule(), 0), VisualizeRequest(9, 1, Schedule(), 0),
                VisualizeRequest(7, 2, Schedule(), 3), VisualizeRequest(7, 3, other, 0),
                VisualizeRequest(7, 4, Schedule(), 0), VisualizeRequest(7, 5, Schedule(), 0)]
    batches = optimization_groups(requests, 2)
    assert [[requests.index(r) for r in batch] for batch in batches] == [[0, 2], [4, 5], [1], [3]]
    assert [len(b) for b in optimization_groups(requests, 4)] == [4, 1, 1]


def test_visualize_many_needs_one_seed_per_filter(features):
    with pytest.raises(ValueError, match="one seed per filter"):
        visualize_many(features, 7, [1, 2], [0], CROSSING)


def test_output_and_gradient_of_an_objective_is_autograds(features):
    """What bench/batching.py measures: the input gradient of each image's objective."""
    from bench.batching import each_filter
    from featureviz.optim.batching import output_and_gradient
    objective = each_filter(features, 7, [3, 5])
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():  # as under a model server
        values, gradient = output_and_gradient(objective, images, "fp32")
    x = images.clone().requires_grad_(True)
    objective(x).sum().backward()
    assert values.shape == (2,) and torch.allclose(gradient, x.grad, rtol=1e-5, atol=1e-7)
    assert gradient.abs().sum() > 0
