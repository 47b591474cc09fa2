"""End-to-end: the explain endpoints of the suite's TorchServe, against independent computations
on the same (seeded random) weights, and through gRPC."""
import io
import json

import pytest
import requests
import torch
from PIL import Image

from featureviz.model.network import normalize
from serving.client import predict
from tests.support.images import photo, pixels
from tests.support.reference import expected_deconv, expected_gradcam, expected_occlusion, expected_saliency, top1

pytestmark = pytest.mark.e2e


def post(api, operation, fields=None, data=None, **kw):
    files = {k: (None, str(v)) for k, v in (fields or {}).items()}
    if data is not None:
        files["data"] = ("image.png", data, "image/png")
    return requests.post(f"{api.inference}/predictions/{operation}", files=files, headers=api.auth,
                         timeout=300, **kw)


def as_json(response):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model_version"] == "1.0" and body["weights"]["trained"] is False
    return body


@pytest.mark.parametrize("method", ["vanilla", "guided", "deconv"])
def test_saliency(api, reference, method):
    body = as_json(post(api, "saliency", {"method": method, "size": 48, "output": "json"}, photo()))
    x = pixels(48)
    assert body["target"] == top1(reference, x) and body["method"] == method
    expected = expected_saliency(reference, x, body["target"], method)
    torch.testing.assert_close(torch.tensor(body["saliency"]), expected, rtol=1e-4, atol=1e-7)


def test_gradcam(api, reference):
    body = as_json(post(api, "gradcam", {"layer": 40, "target": 281, "size": 64, "output": "json"}, photo()))
    assert (body["layer"], body["target"]) == (40, 281)
    expected = expected_gradcam(reference, pixels(64), 40, 281)
    torch.testing.assert_close(torch.tensor(body["heatmap"]), expected, rtol=1e-4, atol=1e-6)


def test_occlusion(api, reference):
    body = as_json(post(api, "occlusion", {"size": 40, "window": 16, "stride": 12, "output": "json"}, photo()))
    x = pixels(40)
    assert (body["target"], body["window"], body["stride"]) == (top1(reference, x), 16, 12)
    expected = expected_occlusion(reference, x, body["target"], 16, 12)
    torch.testing.assert_close(torch.tensor(body["heatmap"]), expected, rtol=1e-4, atol=1e-8)


def test_deconv(api, reference):
    body = as_json(post(api, "deconv", {"layer": 30, "size": 48, "output": "json"}, photo()))
    output, expected = expected_deconv(reference, pixels(48), 30, body)
    assert body["activation"] == pytest.approx(float(output.max()), rel=1e-5)
    torch.testing.assert_close(torch.tensor(body["reconstruction"]), expected, rtol=1e-4, atol=1e-6)


def test_layers_and_filters(api, reference):
    rows = as_json(requests.post(f"{api.inference}/predictions/layers", json={"output": "json"},
                                 headers=api.auth, timeout=60))["layers"]
    assert len(rows) == 44 + 7 and rows[40]["spatial"] == [14, 14] and rows[-1]["channels"] == 1000
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in reference.parameters())
    kernels = as_json(requests.post(f"{api.inference}/predictions/filters", json={"output": "json", "layer": 3},
                                    headers=api.auth, timeout=60))
    assert kernels["shape"] == [64, 64, 3, 3]
    torch.testing.assert_close(torch.tensor(kernels["kernels"]), reference.features[3].weight)


@pytest.mark.parametrize("operation, fields, size", [
    ("deconv", {"size": 48}, (96, 48)),
    ("saliency", {"size": 48}, (96, 48)),
    ("gradcam", {"size": 48}, (96, 48)),
    ("occlusion", {"size": 48, "window": 24, "stride": 24}, (96, 48)),
    ("layers", {}, None),
    ("filters", {}, None),
])
def test_png_is_the_default_answer(api, operation, fields, size):
    takes_image = operation not in ("layers", "filters")
    response = post(api, operation, fields, photo() if takes_image else None)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "RGB" and image.text["operation"] == operation
    assert size is None or image.size == size


@pytest.mark.parametrize("operation, fields, field", [
    ("saliency", {"method": "smoothgrad"}, "method"),
    ("gradcam", {"target": 1000}, "target"),
    ("occlusion", {"window": 300}, "window"),
    ("filters", {"layer": 1}, "layer"),
    ("deconv", {"layer": 30, "filter": 512}, "filter"),
])
def test_bad_input_is_a_400_naming_the_field_and_the_worker_lives(api, operation, fields, field):
    response = post(api, operation, fields, photo() if operation != "filters" else None)
    assert response.status_code == 400 and response.json()["field"] == field
    again = post(api, operation, {"output": "json", **({"size": 32} if operation != "filters" else {})},
                 photo() if operation != "filters" else None)
    assert again.status_code == 200


def test_grpc_prediction_is_the_http_body(api, served):
    data = photo()
    over_http = post(api, "gradcam", {"size": 48, "output": "json"}, data)
    address = f"127.0.0.1:{served['props']['grpc_inference_port']}"
    inputs = {"data": data, "size": "48", "output": "json"}
    prediction = predict(address, served["keys"]["inference"], "gradcam", inputs)
    assert prediction == over_http.content and json.loads(prediction)["operation"] == "gradcam"


def expected_integrated_gradients(reference, x, target, steps):
    """captum's IntegratedGradients called directly on torchvision's network, from black."""
    from captum.attr import IntegratedGradients
    attributions = IntegratedGradients(lambda pixels: reference(normalize(pixels))).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=steps)
    return attributions.abs().amax(dim=1)[0]


def test_explanations_route_answers_json_attributions_and_integrated_gradients_is_captums(api, served, reference):
    fields = {"size": 40, "target": 3, "method": "integrated_gradients", "steps": 16}
    files = {**{k: (None, str(v)) for k, v in fields.items()}, "data": ("image.png", photo(), "image/png")}
    response = requests.post(f"{api.inference}/explanations/saliency", files=files, headers=api.auth, timeout=300)
    body = as_json(response)  # JSON without output: json, as TorchServe's captum examples answer
    assert body["method"] == "integrated_gradients" and body["steps"] == 16
    expected = expected_integrated_gradients(reference, pixels(40), 3, 16)
    # A server's threads sum in another order than this process: within 1% of the map's peak
    torch.testing.assert_close(torch.tensor(body["saliency"]), expected, rtol=1e-3, atol=1e-5)
    # TorchServe 0.12's gRPC has no explanations call: Predictions with output json answers the same
    address = f"127.0.0.1:{served['props']['grpc_inference_port']}"
    inputs = {"data": photo(), **{k: str(v) for k, v in fields.items()}, "output": "json"}
    over_grpc = json.loads(predict(address, served["keys"]["inference"], "saliency", inputs))
    torch.testing.assert_close(torch.tensor(over_grpc["saliency"]), expected, rtol=1e-3, atol=1e-5)
    png = requests.post(f"{api.inference}/explanations/saliency", files={**files, "output": (None, "png")},
                        headers=api.auth, timeout=300)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
