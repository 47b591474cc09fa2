"""Several images optimized together: each must be, bit for bit, the image it is alone."""
import pytest
import torch
from torch import nn

from bench.ours import visualize, visualize_many
from featureviz.optim.batching import batch_is_exact, slots_are_exact
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


class BySlot(nn.Module):
    """A kernel that splits its sums by position in the batch: exact alone, off by a last bit by slot."""
    def forward(self, x):
        slot = torch.arange(len(x), dtype=x.dtype).view(-1, 1, 1, 1)
        return (x * (1 + slot * 1e-7)) * (1 - slot * 1e-7)


class MixesImages(nn.Module):
    def forward(self, x):
        return x - x.mean(0, keepdim=True)


def test_groups_are_trusted_only_where_no_image_depends_on_its_neighbours_or_slot():
    cpu = torch.device("cpu")
    assert slots_are_exact(nn.Sequential(nn.Tanh(), nn.Hardtanh(-0.5, 0.5)), 4, 12, cpu, "fp32")
    assert slots_are_exact(nn.Sequential(MixesImages()), 1, 12, cpu, "fp32")  # a group of one is alone
    assert not slots_are_exact(nn.Sequential(MixesImages()), 4, 12, cpu, "fp32")
    by_slot = nn.Sequential(BySlot())
    images = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(by_slot(images)[2], by_slot(images[2:])[0])  # the probe has something to find
    assert not slots_are_exact(by_slot, 3, 12, cpu, "fp32")


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


def test_the_slots_measurement_names_the_module_whose_output_depends_on_the_slot():
    from bench.slots import slot_differences
    network = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), BySlot(), nn.ReLU())
    differences = slot_differences(network, 3, 8, torch.device("cpu"), "fp32")
    forward = [f for f, _ in differences]
    assert forward[0] == 0 and forward[1] > 0 and forward[2] > 0  # the convolution is exact, BySlot not
    assert differences[0][1] > 0  # and its gradient reaches the convolution's output
    assert slot_differences(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()), 3, 8,
                            torch.device("cpu"), "fp32") == [(0, 0), (0, 0)]
