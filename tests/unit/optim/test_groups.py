"""Images optimized in groups of a fixed shape (featureviz.optim.groups): each depends only on its
own filter, seed, schedule and the group shape G, not on its neighbours nor on its slot."""
import pytest
import torch

from bench.ours import visualize, visualize_group
from featureviz.optim.param.pixel import Schedule

TINY = Schedule(size=16, upscaling_steps=2, opt_steps=2)
# Sides 80, 120 and 180: oneDNN computes 80 differently in a batch than alone (tests/unit/optim/test_batching.py).
CROSSING = Schedule(size=80, upscaling_steps=3, upscaling_factor=1.5, opt_steps=3)


@pytest.mark.parametrize("layer, schedule, group_size, groups", [
    (7, TINY, 2, [([9, 5], [2, 1]), ([5, 0], [1, 0])]),
    (7, TINY, 3, [([9, 5, 3], [2, 1, 0]), ([0, 3, 5], [3, 1, 1]), ([5], [1])]),
    (7, CROSSING, 2, [([0, 5], [0, 1]), ([5, 9], [1, 2])]),
])
def test_an_image_is_the_same_whatever_its_neighbours_and_slot(features, layer, schedule, group_size, groups):
    """Filter 5, seed 1, in groups of `group_size` with other filters and seeds beside it, in every
    slot, and in a group of stand-ins: identical bytes, and identical activations on the way."""
    seen = []
    for filters, seeds in groups:
        results = visualize_group(features, layer, filters, seeds, group_size, schedule)
        assert len(results) == len(filters)  # the stand-ins are dropped
        seen.append(results[filters.index(5)])
    first = seen[0]
    for other in seen[1:]:
        assert torch.equal(other.image, first.image)
        assert other.activation_per_scale == first.activation_per_scale
        assert other.activation_final == first.activation_final
    assert first.batched_sides == schedule.sides()  # every side in one group
    # Its neighbours are their own images: another filter's is not filter 5's.
    assert not torch.equal(visualize_group(features, layer, [9], [1], group_size, schedule)[0].image, first.image)


def test_a_group_of_one_is_the_image_alone(features):
    grouped = visualize_group(features, 7, [5], [1], 1, TINY)[0]
    alone = visualize(features, 7, 5, TINY, 1)
    assert torch.equal(grouped.image, alone.image) and grouped.batched_sides == []


def test_a_group_reports_its_own_images_progress_only(features):
    seen = []
    visualize_group(features, 7, [3, 5], [0, 0], 3, TINY, on_stage=lambda stage, side, values, images:
                    seen.append((stage, side, len(values), len(images))))
    assert seen == [(0, 16, 2, 2), (1, 19, 2, 2)]


@pytest.mark.parametrize("filters, seeds", [([], []), ([1, 2, 3], [0, 0, 0])])
def test_a_group_holds_one_to_g_images(features, filters, seeds):
    with pytest.raises(ValueError, match="1 to 2 images"):
        visualize_group(features, 7, filters, seeds, 2, TINY)
