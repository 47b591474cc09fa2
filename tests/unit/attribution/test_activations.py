"""featureviz.attribution.activations: per-channel means and top channels."""
import pytest
import torch

from featureviz.attribution.activations import channel_means, top_channels
from featureviz.model.geometry import output_channels
from featureviz.model.network import normalize
from tests.support.reference import reference_layer_output


@pytest.mark.slow
def test_channel_means_equal_an_independent_forward_pass(features, state_dict):
    images = torch.rand(2, 3, 32, 32)
    for layer in (2, 20, 42):
        means = channel_means(features, layer, images)
        reference = reference_layer_output(state_dict, layer, normalize(images)).mean(dim=(2, 3))
        assert means.shape == (2, output_channels(features, layer))
        assert torch.allclose(means, reference, atol=1e-5)


def test_top_channels_are_sorted_highest_first():
    means = torch.tensor([0.1, 3.0, -1.0, 2.0])
    assert top_channels(means, 2) == [{"channel": 1, "mean": 3.0}, {"channel": 3, "mean": 2.0}]
    assert len(top_channels(torch.rand(512))) == 10
