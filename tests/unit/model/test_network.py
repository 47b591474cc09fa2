"""featureviz.model.network: the layers the article counts, a network cut at a layer, the input space."""
import torch

from featureviz.model.network import denormalize, normalize, truncated
from featureviz.optim.param.pixel import start_noise
from tests.support.reference import reference_layer_output


def test_article_layer_indices(features):
    # The article counts vgg16_bn().features: 7 conv2_1, 14 conv3_1, 20 conv3_3, 30 conv4_3, 40 conv5_3.
    convs = {7: (64, 128), 14: (128, 256), 20: (256, 256), 30: (512, 512), 40: (512, 512)}
    for index, (cin, cout) in convs.items():
        assert isinstance(features[index], torch.nn.Conv2d)
        assert (features[index].in_channels, features[index].out_channels) == (cin, cout)
    assert isinstance(features[41], torch.nn.BatchNorm2d) and isinstance(features[42], torch.nn.ReLU)
    assert len(features) == 44


def test_truncated_at_a_layer_gives_its_own_output_despite_in_place_relus(features, state_dict):
    # features[1] (BatchNorm) is followed by an in-place ReLU in the full network; cut at the
    # layer, the output is the layer's own, negative values included.
    x = normalize(torch.rand(1, 3, 32, 32))
    expected = reference_layer_output(state_dict, 1, x)
    assert (expected < 0).any()
    with torch.no_grad():
        assert torch.allclose(truncated(features, 1)(x), expected, atol=1e-5)
        assert torch.allclose(truncated(features, 7)(x), reference_layer_output(state_dict, 7, x), atol=1e-5)


def test_gradient_reaches_the_pixels(features):
    x = normalize(start_noise(16, 0))[None].requires_grad_(True)
    truncated(features, 7)(x)[0, 12].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_normalize_round_trip():
    img = torch.rand(3, 5, 5)
    assert torch.allclose(denormalize(normalize(img)), img, atol=1e-6)
