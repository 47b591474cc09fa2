"""featureviz.model.lean: the one-channel network the optimization runs, against the full layer."""
import pytest
import torch

from featureviz.model.lean import single_channel
from featureviz.model.network import normalize
from featureviz.model.pool_relu import PoolReLU
from tests.support.reference import reference_layer_output


@pytest.mark.parametrize("layer, channel", [(0, 5), (2, 63), (6, 1), (7, 12), (41, 300), (42, 7), (43, 511)])
def test_single_channel_network_equals_the_full_layer_channel(features, state_dict, layer, channel):
    x = normalize(torch.rand(2, 3, 32, 32))
    with torch.no_grad():
        out = single_channel(features, layer, channel)(x)
    expected = reference_layer_output(state_dict, layer, x)[:, channel:channel + 1]
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-4, rtol=1e-4)
    assert all(not p.requires_grad for p in single_channel(features, layer, channel).parameters())


@pytest.mark.parametrize("layer, channel", [(1, 3), (6, 1), (7, 12), (23, 9), (40, 7)])
def test_single_channel_network_has_the_full_layers_input_gradient(features, state_dict, layer, channel):
    """What the optimization follows: d mean(channel) / d pixels, against a fresh torchvision
    vgg16_bn run module by module (BatchNorms folded and ReLUs moved after max-pools give the
    same gradient up to rounding)."""
    from torchvision.models import vgg16_bn
    reference = vgg16_bn(weights=None)
    reference.load_state_dict(state_dict)
    reference.eval()
    x = normalize(torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(layer)))

    def gradient(net):
        pixels = x.clone().requires_grad_(True)
        net(pixels).mean().backward()
        return pixels.grad
    lean = gradient(single_channel(features, layer, channel))
    expected = gradient(lambda v: reference.features[: layer + 1](v)[:, channel])
    assert expected.abs().max() > 0
    assert torch.allclose(lean, expected, atol=1e-5 * expected.abs().max().item(), rtol=1e-4)


def test_single_channel_network_runs_no_batch_norm_and_no_relu_before_a_pool(features):
    net = single_channel(features, 43, 5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net)
    assert [type(m) for m in net].count(PoolReLU) == 5 and not any(isinstance(m, torch.nn.MaxPool2d) for m in net)
    assert all(not isinstance(net[i + 1], torch.nn.MaxPool2d) for i, m in enumerate(net[:-1])
               if isinstance(m, torch.nn.ReLU))
