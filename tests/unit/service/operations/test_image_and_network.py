"""The explain operations (deconv, saliency, gradcam, occlusion, layers, filters) against independent
computations on a fresh torchvision vgg16_bn with the same weights."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support.operations import operation_of, run_operation
from featureviz.service.operations.architecture import MAX_JSON_WEIGHTS
from featureviz.service.refusals import BadRequest
from tests.support.images import photo, pixels, png
from tests.support.reference import (expected_deconv, expected_gradcam, expected_occlusion, expected_saliency, logits,
                                     top1)


def explain(engine, operation, **fields):
    """The operation's Result for these form fields, through the registry as the service runs it."""
    data = fields.pop("data", photo())
    fields = {k: str(v) for k, v in fields.items()}  # as form fields
    if operation not in ("layers", "filters"):
        fields["data"] = data
    return run_operation(engine, operation, fields)


@pytest.mark.parametrize("method", ["vanilla", "guided", "deconv"])
def test_saliency_is_the_input_gradient_of_the_top_class(engine, reference, method):
    x = pixels(48)
    target = top1(reference, x)
    expected = expected_saliency(reference, x, target, method)
    found = explain(engine, "saliency", size=48, method=method)
    assert found.numbers["target"] == target and found.numbers["method"] == method
    assert found.numbers["saliency"].shape == (48, 48)
    torch.testing.assert_close(found.numbers["saliency"], expected, rtol=1e-4, atol=1e-7)
    assert expected.max() > 0


def test_saliency_methods_differ_and_a_given_target_is_used(engine, reference):
    maps = {m: explain(engine, "saliency", size=48, method=m, target=7).numbers for m in ("vanilla", "guided", "deconv")}
    assert all(m["target"] == 7 for m in maps.values())
    assert not torch.allclose(maps["vanilla"]["saliency"], maps["guided"]["saliency"])
    assert not torch.allclose(maps["guided"]["saliency"], maps["deconv"]["saliency"])
    with torch.no_grad():
        expected = logits(reference, pixels(48)).softmax(dim=1)[0, 7]
    assert maps["vanilla"]["probability"] == pytest.approx(float(expected), rel=1e-4)


@pytest.mark.parametrize("layer", [42, 40, 33])
def test_gradcam_equals_a_direct_autograd_gradcam(engine, reference, layer):
    target = 3
    expected = expected_gradcam(reference, pixels(64), layer, target)
    found = explain(engine, "gradcam", size=64, layer=layer, target=target).numbers
    assert found["heatmap"].shape == expected.shape
    torch.testing.assert_close(found["heatmap"], expected, rtol=1e-4, atol=1e-6)
    assert (found["target"], found["layer"]) == (target, layer)


def test_occlusion_is_the_probability_with_the_square_at_each_position(engine, reference):
    size, window, stride = 40, 16, 12
    x = pixels(size)
    target = top1(reference, x)
    found = explain(engine, "occlusion", size=size, window=window, stride=stride).numbers
    expected = expected_occlusion(reference, x, target, window, stride)
    assert expected.shape == (3, 3)  # offsets 0, 12, 24: 24 + 16 <= 40 < 36 + 16
    assert found["target"] == target
    torch.testing.assert_close(found["heatmap"], expected, rtol=1e-4, atol=1e-8)
    assert len(set(expected.flatten().tolist())) > 1  # the square moves the probability


@pytest.mark.parametrize("layer, filter", [(30, None), (13, 5), (2, None)])
def test_deconv_projects_one_activation_as_captum_neuron_deconvolution(engine, reference, layer, filter):
    found = explain(engine, "deconv", size=48, layer=layer, **({} if filter is None else {"filter": filter})).numbers
    output, expected = expected_deconv(reference, pixels(48), layer, found)
    strongest = output.max() if filter is None else output[filter].max()
    assert found["activation"] == pytest.approx(float(strongest), rel=1e-5)
    assert found["reconstruction"].shape == (3, 48, 48)
    torch.testing.assert_close(found["reconstruction"], expected, rtol=1e-4, atol=1e-6)
    assert found["reconstruction"].abs().max() > 0


def test_layers_match_a_forward_pass_with_hooks(engine, reference):
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape))
             for name, m in reference.named_modules() if name.startswith(("features.", "classifier."))]
    with torch.no_grad():
        reference(torch.zeros(1, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    rows = explain(engine, "layers").numbers["layers"]
    modules = dict(reference.named_modules())
    assert [r["name"] for r in rows] == list(shapes)
    for row in rows:
        shape = shapes[row["name"]]
        assert row["type"] == type(modules[row["name"]]).__name__
        assert row["channels"] == shape[1]
        assert row["spatial"] == (list(shape[2:]) if len(shape) == 4 else None)
        assert row["params"] == sum(p.numel() for p in modules[row["name"]].parameters())
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in reference.parameters())


def test_filters_are_the_conv_weights(engine, state_dict):
    found = explain(engine, "filters").numbers
    assert found["shape"] == [64, 3, 3, 3]
    torch.testing.assert_close(found["kernels"], state_dict["features.0.weight"], rtol=0, atol=0)
    one = explain(engine, "filters", layer=40, filter=9).numbers
    torch.testing.assert_close(one["kernels"][0], state_dict["features.40.weight"][9], rtol=0, atol=0)


def test_pngs_are_readable_pictures(engine):
    sizes = {"deconv": (96, 48), "saliency": (96, 48), "gradcam": (96, 48), "occlusion": (96, 48)}
    for operation, size in sizes.items():
        extra = {"window": 24, "stride": 24} if operation == "occlusion" else {}
        image = Image.open(io.BytesIO(explain(engine, operation, size=48, **extra).png({"model_version": "1.0"})))
        assert image.size == size and image.mode == "RGB"
        assert image.text["operation"] == operation and image.text["model_version"] == "1.0"
        left = torch.from_numpy(np.array(image.crop((0, 0, 48, 48)))).float()
        assert left.std() > 0  # the image itself, beside the map
    table = Image.open(io.BytesIO(explain(engine, "layers").png({})))
    assert table.size[1] > 51 * 10  # a line per module
    grid = Image.open(io.BytesIO(explain(engine, "filters").png({})))
    assert grid.size[0] >= 8 * 32 and grid.text["layer"] == "0"


@pytest.mark.parametrize("operation, fields, field, words", [
    ("saliency", {"method": "smooth"}, "method", "one of vanilla, guided, deconv"),
    ("saliency", {"target": 1000}, "target", "<= 999"),
    ("gradcam", {"target": -1}, "target", ">= 0"),
    ("gradcam", {"layer": 44}, "layer", "<= 43"),
    ("occlusion", {"window": 64, "size": 48}, "window", "larger than the image"),
    ("occlusion", {"stride": 1, "window": 1, "size": 512}, "stride", "too much work"),
    ("deconv", {"filter": 512, "layer": 30}, "filter", "0..511"),
    ("deconv", {"layer": 43, "size": 16}, "size", ">= 32"),
    ("saliency", {"output": "jpeg"}, "output", "one of png, json"),
    ("saliency", {"size": 1024}, "size", "<= 512"),
    ("filters", {"layer": 2}, "layer", "ReLU, not a convolution"),
    ("filters", {"layer": 40, "output": "json"}, "filter", f"at most {MAX_JSON_WEIGHTS}"),
    ("filters", {"layer": 0, "filter": 64}, "filter", "0..63"),
    ("layers", {"colour": "red"}, "colour", "unknown field"),
])
def test_refusals_name_the_field(engine, operation, fields, field, words):
    with pytest.raises(BadRequest) as refused:
        explain(engine, operation, **fields)
    assert refused.value.field == field and refused.value.status == 400
    assert words in refused.value.message


def test_image_operations_refuse_missing_and_bad_images(engine):
    with pytest.raises(BadRequest, match="data: missing"):
        operation_of(engine, "gradcam").parse({"size": "64"})
    with pytest.raises(BadRequest, match="not a JPEG or PNG"):
        operation_of(engine, "saliency").parse({"data": b"GIF89a nonsense"})
    assert explain(engine, "gradcam", size=32, data=png(70, 40)).numbers["heatmap"].shape == (2, 2)
