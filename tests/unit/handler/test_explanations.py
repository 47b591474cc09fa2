"""TorchServe's /explanations/{model}: the handler's explain_handle, called as TorchServe calls it
(the frontend marks the request with an `explain` header), and Integrated Gradients against
captum called directly."""
import io
import json

import pytest
import torch
from captum.attr import IntegratedGradients
from PIL import Image

from tests.support.images import png
from tests.support.handler import HTTP_HEADERS, call, make_handler
from featureviz.service.uploads import parse_upload
from featureviz.service.operations import OPERATIONS

EXPLAIN = {**HTTP_HEADERS, "explain": "True"}


@pytest.fixture(scope="module")
def saliency(model_dir):
    return make_handler("saliency", model_dir)


def test_explanations_answer_json_attributions_by_default_and_the_png_on_request(saliency):
    image = png(50, 40)
    fields = {"data": image, "size": b"32", "target": b"7"}
    out, statuses, types, _ = call(saliency, [fields, {**fields, "output": b"png"}], EXPLAIN)
    assert statuses == [200, 200] and types == ["application/json", "image/png"]
    body = json.loads(out[0])
    assert body["operation"] == "saliency" and body["target"] == 7
    assert torch.tensor(body["saliency"]).shape == (32, 32)
    assert out[1] == call(saliency, [{**fields, "output": b"png"}])[0][0]  # as /predictions answers it
    assert Image.open(io.BytesIO(out[1])).size == (64, 32)  # the image and its heatmap


@pytest.mark.slow
def test_integrated_gradients_is_captums_from_a_black_baseline(saliency):
    fields = {"data": png(50, 40), "size": "32", "target": "3", "method": "integrated_gradients", "steps": "20"}
    out, statuses, _, _ = call(saliency, [{"body": fields}], EXPLAIN)
    assert statuses == [200]
    body = json.loads(out[0])
    assert body["method"] == "integrated_gradients" and body["steps"] == 20
    _, pixels = parse_upload({**fields, "data": fields["data"]}, OPERATIONS["saliency"].fields)
    net = saliency.service.model.net
    with torch.inference_mode(False), torch.enable_grad():
        expected = IntegratedGradients(net).attribute(pixels[None], baselines=torch.zeros(1, 3, 32, 32), target=3,
                                                      n_steps=20)[0]
    assert torch.allclose(torch.tensor(body["saliency"]), expected.abs().amax(dim=0), atol=1e-5, rtol=1e-4)
    assert expected.abs().sum() > 0


@pytest.mark.parametrize("fields, field", [({"method": "integrated_gradients", "steps": "0"}, "steps"),
                                           ({"method": "integrated_gradients", "steps": "201"}, "steps"),
                                           ({"method": "ig"}, "method")])
def test_bad_integrated_gradients_fields_are_a_400_naming_them(saliency, fields, field):
    out, statuses, _, _ = call(saliency, [{"data": png(50, 40), **{k: v.encode() for k, v in fields.items()}}], EXPLAIN)
    assert statuses == [400] and json.loads(out[0])["field"] == field


def test_kserve_v1_explain_instances_get_json_attributions(saliency):
    import base64
    instance = {"data": {"b64": base64.b64encode(png(50, 40)).decode()}, "size": 32, "target": 2}
    out, statuses, _, _ = call(saliency, [{"body": {"instances": [instance, {**instance, "target": 5}]}}], EXPLAIN)
    assert statuses == [200]
    predictions = json.loads(out[0])["predictions"]
    assert [p["target"] for p in predictions] == [2, 5] and all(len(p["saliency"]) == 32 for p in predictions)


@pytest.mark.slow
def test_operations_without_attributions_refuse_explanations(model_dir):
    out, statuses, _, _ = call(make_handler("layers", model_dir), [{"body": {}}], EXPLAIN)
    body = json.loads(out[0])
    assert statuses == [400] and body["field"] == "model" and body["type"] == "BadRequest"
    assert body["message"].startswith("model: layers has no explanations")
