"""featureviz.optim.objectives and readout: objectives that add and scale, each term against an
independent forward pass of torchvision's vgg16_bn, and the readout each objective gets."""
import pytest
import torch

from featureviz.model.network import normalize
from featureviz.optim.objectives import channel, direction, diversity, neuron
from featureviz.optim.param.pixel import PixelImage, Schedule
from featureviz.optim.readout import ChannelReadout, LayerReadout, readout
from featureviz.optim.render import Render, render


def outputs(reference, x, layers):
    """Each of `layers`' outputs, module by module (a copy before each, so in-place ReLUs change nothing read)."""
    found = {}
    for index, module in enumerate(list(reference.features)[: max(layers) + 1]):
        x = module(x.clone())
        if index in layers:
            found[index] = x.clone()
    return found


def evaluate(features, objective, x):
    with torch.no_grad():
        total, values = objective(readout(features, [objective])([x])[0])
    return total.item(), values.tolist()


@pytest.fixture(scope="module")
def image():
    return normalize(torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(4)))


def test_objectives_add_subtract_and_scale_as_lucents(features, reference, image):
    objective = channel(7, 3) - 0.5 * channel(7, 12) + 2 * neuron(7, 3, x=4, y=6)
    assert [weight for weight, _ in objective.terms] == [1.0, -0.5, 2.0]
    out = outputs(reference, image, [7])[7]
    expected = [out[:, 3].mean().item(), out[:, 12].mean().item(), out[:, 3, 6, 4].mean().item()]
    total, values = evaluate(features, objective, image)
    assert values == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert total == pytest.approx(expected[0] - 0.5 * expected[1] + 2 * expected[2], rel=1e-4, abs=1e-5)
    assert evaluate(features, -channel(7, 3), image)[0] == pytest.approx(-expected[0], rel=1e-4, abs=1e-5)


def test_a_direction_is_the_mean_over_positions_of_the_activations_dotted_with_its_vector(features, reference, image):
    vector = torch.randn(128, generator=torch.Generator().manual_seed(1))
    out = outputs(reference, image, [9])[9]
    expected = (out * vector.view(1, -1, 1, 1)).sum(1).mean().item()
    assert evaluate(features, direction(9, vector.tolist()), image)[0] == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_diversity_is_minus_the_gram_cosines_of_the_images_over_pairs_divided_by_their_count(features, reference):
    images = normalize(torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)))
    flat = outputs(reference, images, [5])[5].flatten(2)
    grams = [(f @ f.T).flatten() for f in flat]
    grams = [g / g.norm() for g in grams]
    cosines = sum(float(grams[i] @ grams[j]) for i in range(3) for j in range(3) if i != j)
    assert evaluate(features, diversity(5), images)[0] == pytest.approx(-cosines / 3, rel=1e-4)


def test_each_objective_gets_the_readout_it_needs(features):
    lean = readout(features, [channel(40, 3) + neuron(40, 7), channel(40, 9)])
    assert isinstance(lean, ChannelReadout) and set(lean.tails) == {3, 7, 9}
    for whole in ([direction(40, [0.0] * 512)], [channel(40, 3) + diversity(40)], [channel(20, 1) + channel(40, 2)]):
        assert isinstance(readout(features, whole), LayerReadout)


def test_terms_at_several_layers_read_each_layer_unchanged_by_the_in_place_relus(features, reference, image):
    """Layer 4 is a BatchNorm whose output an in-place ReLU overwrites in torchvision's network."""
    objective = channel(4, 1) + channel(9, 2) + channel(12, 5)
    found = outputs(reference, image, [4, 9, 12])
    expected = [found[4][:, 1].mean().item(), found[9][:, 2].mean().item(), found[12][:, 5].mean().item()]
    assert found[4][:, 1].min() < 0  # what a ReLU would have changed
    assert evaluate(features, objective, image)[1] == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_the_lean_and_the_whole_readout_give_the_same_channel(features, image):
    lean = evaluate(features, channel(23, 8), image)[0]
    whole_objective = channel(23, 8) + 0 * direction(23, [0.0] * 256)
    whole = evaluate(features, whole_objective, image)[1][0]
    assert lean == pytest.approx(whole, rel=1e-4, abs=1e-5)


def test_a_render_raises_a_weighted_sum_of_terms_at_several_layers(features):
    objective = channel(7, 3) + 0.5 * channel(14, 5) - 0.25 * channel(14, 9)
    schedule = Schedule(size=24, upscaling_steps=2, opt_steps=4)
    found = render(features, [Render(PixelImage(schedule, 0, torch.device("cpu")), objective)])[0]
    weights = [w for w, _ in objective.terms]
    start = sum(w * v for w, v in zip(weights, found.start))
    final = sum(w * v for w, v in zip(weights, found.final))
    assert final > start + 0.1 * abs(start) and len(found.final) == 3
