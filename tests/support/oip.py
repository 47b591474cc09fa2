"""The Open Inference Protocol side of the tests: a request's fields as typed tensors, the same
request to the suite's TorchServe, and the check that a predictor's outputs are TorchServe's answer
(the same PNG pixels and text, the same JSON and zip bytes, activations within 1e-6)."""
import io
import json

import numpy as np
import requests
from PIL import Image

from tests.support import TINY
from tests.support.images import photo

PHOTO = photo(48)
# Every operation once, small: what TorchServe and the predictor are both asked.
CASES = {
    "visualize": {"layer": 7, "filter": 3, "lr": 0.1, "blur": None, **TINY},
    "activations": {"data": PHOTO, "layer": 14, "size": 32},
    "deconv": {"data": PHOTO, "layer": 7, "size": 32},
    "saliency": {"data": PHOTO, "size": 32},
    "gradcam": {"data": PHOTO, "size": 32, "output": "json"},
    "occlusion": {"data": PHOTO, "size": 32, "window": 16, "stride": 16},
    "layers": {"size": 32, "output": "json"},
    "filters": {"layer": 3, "filter": 1},
}
# A whole layer's images, one PNG each.
LAYER_ZIP = {"layer": 0, "filters": "all", "output": "zip", **TINY}


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def tensors(fields: dict, pixels: bool = False) -> list[tuple[str, str, np.ndarray]]:
    """(name, datatype, array) per field: an image as BYTES (or its pixels as UINT8), null as BYTES
    `null`, text as BYTES, bool BOOL, int INT64, float FP32."""
    found = []
    for name, value in fields.items():
        if isinstance(value, bytes):
            found.append((name, "UINT8", pixels_of(value)) if pixels else (name, "BYTES", np.array([value], object)))
        elif value is None or isinstance(value, str):
            found.append((name, "BYTES", np.array([b"null" if value is None else value.encode()], object)))
        else:
            kind = {bool: ("BOOL", np.bool_), int: ("INT64", np.int64), float: ("FP32", np.float32)}[type(value)]
            found.append((name, kind[0], np.array([value], kind[1])))
    return found


def triton_inputs(module, fields: dict, binary: bool = True, pixels: bool = False) -> list:
    """tritonclient's InferInputs (module: tritonclient.http or tritonclient.grpc) of the fields."""
    inputs = []
    for name, datatype, array in tensors(fields, pixels):
        tensor = module.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, **({} if module.__name__.endswith("grpc") else {"binary_data": binary}))
        inputs.append(tensor)
    return inputs


def torchserve(api, operation: str, fields: dict, path: str = "predictions") -> requests.Response:
    """The request to the suite's TorchServe: JSON, or a form with the image as a file."""
    url = f"{api.inference}/{path}/{operation}"
    if "data" not in fields:
        return requests.post(url, json=fields, headers=api.auth, timeout=300)
    files = {name: (None, str(value)) for name, value in fields.items() if name != "data"}
    return requests.post(url, files={**files, "data": ("image.png", fields["data"], "image/png")}, headers=api.auth,
                         timeout=300)


def assert_torchserves_answer(response: requests.Response, outputs: dict):
    """`outputs` (name -> numpy array, BYTES as bytes) hold TorchServe's answer."""
    assert response.status_code == 200, response.text
    kind = response.headers["content-type"]
    if kind == "image/png":
        picture = Image.open(io.BytesIO(response.content))
        assert outputs["image"].dtype == np.uint8 and np.array_equal(outputs["image"], pixels_of(response.content))
        for name, text in picture.text.items():
            value = outputs[name][0]
            if isinstance(value, bytes):
                assert value.decode() == text, name
            else:
                assert value == np.float32(text) if outputs[name].dtype == np.float32 else value == int(text), name
    elif kind == "application/zip":
        assert outputs["zip"][0] == response.content
    else:
        assert outputs["json"][0] == response.content
        body = json.loads(response.content)
        if "means" in body:
            assert np.abs(outputs["activations"] - np.array(body["means"])).max() <= 1e-6


def refusal_message(response: requests.Response) -> str:
    """TorchServe's refusal: its status and the message naming the field."""
    assert response.status_code in (400, 413), response.text
    return response.json()["message"]
