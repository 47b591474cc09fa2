"""featureviz.optim.render: the multi-scale loop at tiny sizes, on seeded random weights."""
import pytest
import torch

from featureviz.model.network import normalize
from featureviz.optim.batching import every_side
from featureviz.optim.param.pixel import Schedule
from bench.ours import visualize, visualize_many
from tests.support.reference import reference_layer_output

TINY = Schedule(size=16, upscaling_steps=3, upscaling_factor=1.2, opt_steps=4, lr=0.1, blur=3)


@pytest.mark.parametrize("layer, filter", [(7, 12), (14, 1), (40, 3)])
def test_visualize_raises_the_activation_and_returns_the_last_scale(features, layer, filter):
    result = visualize(features, layer, filter, TINY, seed=0)
    assert result.image.shape == (3, TINY.sides()[-1], TINY.sides()[-1])
    assert 0 <= result.image.min() and result.image.max() <= 1
    # Random weights give small activations deep in the network: a clear relative rise.
    assert result.activation_final > result.activation_start + 0.5 * abs(result.activation_start) + 1e-3
    assert len(result.activation_per_scale) == TINY.upscaling_steps


@pytest.mark.slow
def test_activation_reported_is_that_of_the_returned_image(features, state_dict):
    result = visualize(features, 7, 12, TINY, seed=0)
    out = reference_layer_output(state_dict, 7, normalize(result.image)[None])
    assert out[0, 12].mean().item() == pytest.approx(result.activation_final, rel=1e-4, abs=1e-5)


def test_bf16_optimizes_yet_reports_the_fp32_activation_of_its_image(features, state_dict):
    result = visualize(features, 7, 12, TINY, seed=0, precision="bf16")
    fp32 = visualize(features, 7, 12, TINY, seed=0)
    assert not torch.equal(result.image, fp32.image)  # the steps did run in bf16
    out = reference_layer_output(state_dict, 7, normalize(result.image)[None])
    assert out[0, 12].mean().item() == pytest.approx(result.activation_final, rel=1e-4, abs=1e-5)
    assert result.activation_final > result.activation_start + 0.5 * abs(result.activation_start)


def test_an_unknown_precision_is_refused_before_any_work(features):
    with pytest.raises(ValueError, match="fp16"):
        visualize(features, 7, 12, TINY, precision="fp16")


def test_same_seed_same_image_other_seed_other_image(features):
    a = visualize(features, 7, 12, TINY, seed=3).image
    b = visualize(features, 7, 12, TINY, seed=3).image
    c = visualize(features, 7, 12, TINY, seed=4).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_blur_none_and_blur_change_the_result(features):
    plain = visualize(features, 7, 12, Schedule(16, 2, 1.2, 2, 0.1, None)).image
    blurred = visualize(features, 7, 12, Schedule(16, 2, 1.2, 2, 0.1, 5)).image
    assert plain.shape == blurred.shape and not torch.equal(plain, blurred)


def test_render_asks_its_batching_policy_at_each_side_and_follows_it(features):
    """The render loop takes its batching policy as it takes its objective: the benchmarks pass
    every_side to compare with the engine's exact batches."""
    schedule = Schedule(size=20, upscaling_steps=3, opt_steps=3)
    asked = []

    def recorded(network, n, side, device, precision):
        asked.append((n, side, precision))
        return every_side(network, n, side, device, precision)

    together = visualize_many(features, 7, [5, 9], [3, 3], schedule, batch_when=recorded)
    assert asked == [(2, side, "fp32") for side in schedule.sides()]
    assert all(result.batched_sides == schedule.sides() for result in together)
    for result, filter in zip(together, (5, 9)):
        alone = visualize(features, 7, filter, schedule, seed=3)
        assert result.image.shape == alone.image.shape
        assert result.activation_final > result.activation_start
    never = visualize_many(features, 7, [5, 9], [3, 3], schedule, batch_when=lambda *args: False)
    assert never[0].batched_sides == [] and torch.equal(never[0].image, visualize(features, 7, 5, schedule, seed=3).image)


def test_bf16_gives_the_same_image_for_the_same_request(features):
    """The result cache and `filters` rely on it, whatever the default precision."""
    a = visualize(features, 14, 3, TINY, seed=5, precision="bf16")
    b = visualize(features, 14, 3, TINY, seed=5, precision="bf16")
    assert torch.equal(a.image, b.image) and a.activation_final == b.activation_final
