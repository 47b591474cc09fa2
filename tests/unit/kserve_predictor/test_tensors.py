"""The KServe predictor's tensors: Open Inference Protocol inputs -> the fields TorchServe's JSON
gives the same operation; answers -> output tensors. No kserve import (it cannot share a process
with tritonclient.grpc): the inputs are stand-ins with kserve's InferInput interface."""
import io
import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from featureviz.service.refusals import BadRequest
from kserve_predictor.tensors import answer_outputs, request_fields, requested
from tests.support import TINY
from tests.support.images import photo
from tests.support.operations import operation_of


class Tensor:
    """What kserve's InferInput offers the adapter: name, datatype, shape, as_numpy()."""

    def __init__(self, name, datatype, values, dtype=None):
        self.name, self.datatype = name, datatype
        self.array = np.array(values, dtype=dtype)
        self.shape = list(self.array.shape)

    def as_numpy(self):
        return self.array


def fields_of(*tensors):
    return request_fields(list(tensors))


def test_each_datatype_becomes_the_value_a_json_body_sends():
    fields = fields_of(Tensor("filter", "INT64", [7]), Tensor("layer", "INT32", [30], np.int32),
                       Tensor("lr", "FP32", [0.1], np.float32), Tensor("upscaling_factor", "FP64", [1.3]),
                       Tensor("negative", "BOOL", [True]), Tensor("param", "BYTES", [b"fft"], object),
                       Tensor("blur", "BYTES", [b"null"], object), Tensor("output", "BYTES", ["png"], object))
    assert fields == {"filter": 7, "layer": 30, "lr": 0.1, "upscaling_factor": 1.3, "negative": True,
                      "param": b"fft", "blur": None, "output": b"png"}
    assert type(fields["filter"]) is int and type(fields["lr"]) is float and type(fields["negative"]) is bool


def test_fp32_fields_give_torchserves_request_and_cache_key(engine):
    """0.1 as a float32 is 0.100000001...: read as its shortest decimal, the request (and its
    cached image) is the one TorchServe's JSON 0.1 makes."""
    visualize = operation_of(engine, "visualize")
    sent = {"layer": 7, "filter": 3, "lr": 0.1, "upscaling_factor": 1.3, **TINY}
    tensors = [Tensor(k, "FP32", [v], np.float32) if isinstance(v, float) else Tensor(k, "INT64", [v])
               for k, v in sent.items()]
    over_oip = visualize.parse(fields_of(*tensors))
    assert over_oip == visualize.parse(sent)
    context = visualize.cache_context()
    assert over_oip.cache_key(**context) == visualize.parse(sent).cache_key(**context)


def test_the_image_comes_as_encoded_bytes_or_as_pixels(engine):
    data = photo(40)
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    activations = operation_of(engine, "activations")
    as_bytes = activations.parse(fields_of(Tensor("data", "BYTES", [data], object), Tensor("size", "INT64", [32])))
    as_pixels = activations.parse(fields_of(Tensor("data", "UINT8", pixels), Tensor("size", "INT64", [32])))
    assert (as_bytes.image == as_pixels.image).all() and as_bytes.values == as_pixels.values


@pytest.mark.parametrize("tensor, field, words", [
    (Tensor("filter", "INT64", [3, 4]), "filter", "shape [1]"),
    (Tensor("filter", "FP16", [3], np.float16), "filter", "FP16 is not accepted"),
    (Tensor("filter", "UINT8", [3], np.uint8), "filter", "UINT8 is not accepted"),
    (Tensor("data", "FP32", np.zeros((4, 4, 3)), np.float32), "data", "UINT8 [H, W, 3]"),
    (Tensor("data", "BYTES", [b"a", b"b"], object), "data", "BYTES [1]"),
])
def test_a_tensor_of_the_wrong_kind_is_refused_naming_it(tensor, field, words):
    with pytest.raises(BadRequest) as caught:
        fields_of(tensor)
    assert caught.value.field == field and words in caught.value.message


def test_a_field_sent_twice_is_refused():
    with pytest.raises(BadRequest) as caught:
        fields_of(Tensor("filter", "INT64", [3]), Tensor("filter", "INT64", [4]))
    assert caught.value.field == "filter"


def png_with_text(pixels, text):
    info = PngImagePlugin.PngInfo()
    for name, value in text.items():
        info.add_text(name, value)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_a_png_answer_is_its_pixels_and_its_texts_fields():
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    body = png_with_text(pixels, {"layer": "40", "activation_final": "1.25e-3", "precision": "fp32",
                                  "model_version": "1.0", "weights": "untrained"})
    outputs = {o.name: o for o in answer_outputs("visualize", "image/png", body)}
    assert outputs["image"].datatype == "UINT8" and np.array_equal(outputs["image"].array, pixels)
    assert (outputs["layer"].datatype, outputs["layer"].array.tolist()) == ("INT64", [40])
    assert outputs["activation_final"].datatype == "FP32"
    assert outputs["activation_final"].array[0] == np.float32(1.25e-3)
    for name, text in (("precision", b"fp32"), ("model_version", b"1.0"), ("weights", b"untrained")):
        assert (outputs[name].datatype, outputs[name].array.tolist()) == ("BYTES", [text])


def test_a_json_answer_is_its_bytes_and_its_numbers_and_text():
    body = json.dumps({"layer": 7, "channels": 3, "means": [0.5, -1.0, 2.0], "top": [{"channel": 2}],
                       "kernels": [[[1.5, 2.0]], [[3.0, 4.0]]], "ragged": [[1], [2, 3]], "filter": None,
                       "operation": "filters", "weights": {"source": "random"}}).encode()
    outputs = {o.name: o for o in answer_outputs("activations", "application/json", body)}
    assert outputs["json"].array.tolist() == [body] and outputs["json"].datatype == "BYTES"
    assert outputs["activations"].datatype == "FP32" and outputs["activations"].array.tolist() == [0.5, -1.0, 2.0]
    assert outputs["kernels"].array.shape == (2, 1, 2) and outputs["kernels"].datatype == "FP32"
    assert (outputs["layer"].datatype, outputs["layer"].array.tolist()) == ("INT64", [7])
    assert outputs["operation"].array.tolist() == [b"filters"]
    assert not {"means", "top", "ragged", "filter", "weights"} & set(outputs)


def test_a_zip_answer_is_its_bytes():
    (output,) = answer_outputs("visualize", "application/zip", b"PK\x03\x04\xff")
    assert (output.name, output.datatype, output.array.tolist()) == ("zip", "BYTES", [b"PK\x03\x04\xff"])


def test_a_request_gets_the_outputs_it_names_and_no_binary_one_as_json():
    outputs = answer_outputs("visualize", "application/zip", b"PK\x03\x04\xff")
    assert requested(outputs, None) == outputs and requested(outputs, {"zip": True}) == outputs
    with pytest.raises(BadRequest) as caught:
        requested(outputs, {"zip": False}, as_json=lambda name: True)
    assert caught.value.field == "zip" and "binary" in caught.value.message
    with pytest.raises(BadRequest) as caught:
        requested(outputs, {"image": True})
    assert caught.value.field == "image" and "zip" in caught.value.message
