"""Open Inference Protocol tensors and the service's fields and answers.

In: each input tensor is a request field of its name, shape [1] (INT32/INT64, FP32/FP64, BOOL,
BYTES for text, BYTES `null` for null); `data` is the image, BYTES [1] (JPEG or PNG) or UINT8
[H, W, 3] (pixels). Out: a PNG answer is `image` (UINT8 [H, W, 3]) and its text's fields, a zip
is `zip` (BYTES [1]), a JSON answer is `json` (BYTES [1], TorchServe's bytes) and its top-level
numbers and text. Plain numpy: kserve_predictor.model makes KServe's tensors of these (and the
tests, which cannot import kserve beside tritonclient.grpc, read these directly).
"""
import io
import json
import re
from typing import NamedTuple

import numpy as np
from PIL import Image

from featureviz.service.refusals import BadRequest
from featureviz.service.uploads import IMAGE_FIELD

SCALARS = ("INT32", "INT64", "FP32", "FP64", "BOOL", "BYTES")
INTEGER = re.compile(r"-?\d+")
NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|-?inf|nan")
TEXT_ONLY = {"model_version"}  # PNG text that reads as a number, but is a name
# Outputs named otherwise than their JSON field, by operation (the contract: `activations`).
RENAMED = {"activations": {"means": "activations"}}


def request_fields(inputs) -> dict:
    """The named input tensors of a v2 request -> the service's named parts."""
    fields = {}
    for tensor in inputs:
        name = tensor.name
        if name in fields:
            raise BadRequest(name, "sent twice; send each field once")
        try:
            array = tensor.as_numpy()
        except (ValueError, TypeError) as error:  # data against shape, an unknown datatype
            raise BadRequest(name, f"not a {tensor.datatype} tensor of shape {list(tensor.shape)} ({error})") from None
        fields[name] = image(tensor.datatype, array) if name == IMAGE_FIELD else scalar(name, tensor.datatype, array)
    return fields


def image(datatype: str, array: np.ndarray):
    """`data`: JPEG or PNG bytes, or the pixels (uploads checks their dtype and shape)."""
    if datatype == "BYTES" and array.shape == (1,):
        value = array[0]
        return value if isinstance(value, bytes) else str(value).encode()
    if datatype == "UINT8":
        return array
    raise BadRequest(IMAGE_FIELD, f"expected BYTES [1] (a JPEG or PNG) or UINT8 [H, W, 3] (pixels), "
                                  f"got {datatype} {list(array.shape)}")


def scalar(name: str, datatype: str, array: np.ndarray):
    if datatype not in SCALARS:
        raise BadRequest(name, f"{datatype} is not accepted; send {', '.join(SCALARS)}")
    if array.shape != (1,):
        raise BadRequest(name, f"expected a tensor of shape [1], got {list(array.shape)}")
    value = array[0]
    if datatype == "BYTES":  # text, as a form field or a gRPC input sends it; the field decodes it
        raw = value if isinstance(value, bytes) else str(value).encode()
        return None if raw.strip() == b"null" else raw
    if datatype == "BOOL":
        return bool(value)
    if datatype == "FP32":  # the shortest decimal of the float32: 0.1 sent as FP32 is 0.1
        return float(str(value))
    return float(value) if datatype == "FP64" else int(value)


class Output(NamedTuple):
    name: str
    datatype: str
    array: np.ndarray


def text_output(name: str, text) -> Output:
    data = text if isinstance(text, bytes) else str(text).encode()
    return Output(name, "BYTES", np.array([data], dtype=np.object_))


def answer_outputs(operation: str, content_type: str, body: bytes) -> list[Output]:
    if content_type == "image/png":
        return png_outputs(body)
    if content_type == "application/zip":
        return [text_output("zip", body)]
    return json_outputs(operation, body)


def png_outputs(body: bytes) -> list[Output]:
    picture = Image.open(io.BytesIO(body))
    outputs = [Output("image", "UINT8", np.asarray(picture.convert("RGB")))]
    for name, text in picture.text.items():
        if name not in TEXT_ONLY and INTEGER.fullmatch(text):
            outputs.append(Output(name, "INT64", np.array([int(text)], np.int64)))
        elif name not in TEXT_ONLY and NUMBER.fullmatch(text):
            outputs.append(Output(name, "FP32", np.array([float(text)], np.float32)))
        else:
            outputs.append(text_output(name, text))
    return outputs


def json_outputs(operation: str, body: bytes) -> list[Output]:
    outputs = [text_output("json", body)]
    renamed = RENAMED.get(operation, {})
    for name, value in json.loads(body).items():
        found = value_output(renamed.get(name, name), value)
        if found is not None:
            outputs.append(found)
    return outputs


def value_output(name: str, value) -> Output | None:
    """A JSON answer's field as a tensor: a number, text, or a rectangular list of numbers;
    None for what only the JSON holds (objects, null, ragged lists)."""
    if isinstance(value, str):
        return text_output(name, value)
    if value is None or isinstance(value, dict):
        return None
    try:
        array = np.asarray(value if isinstance(value, list) else [value])
    except ValueError:  # ragged
        return None
    kind = {"b": ("BOOL", np.bool_), "i": ("INT64", np.int64), "f": ("FP32", np.float32)}.get(array.dtype.kind)
    return None if kind is None else Output(name, kind[0], array.astype(kind[1]))


def requested(outputs: list[Output], asked: dict | None, as_json=lambda name: False) -> list[Output]:
    """The outputs a request names in `asked` (all where it names none). `as_json(name)`: whether
    the output goes as JSON (REST without binary_data), which carries only UTF-8 text: a zip asked
    for so is refused, naming it, before KServe would fail on it (a 500)."""
    unknown = sorted(set(asked or ()) - {o.name for o in outputs})
    if unknown:
        raise BadRequest(unknown[0], f"no such output in this answer; it has {', '.join(o.name for o in outputs)}")
    chosen = [o for o in outputs if not asked or o.name in asked]
    for output in chosen:
        if output.datatype == "BYTES" and as_json(output.name) and not utf8(output.array[0]):
            raise BadRequest(output.name, "holds binary data, which JSON cannot carry; ask for it in binary "
                                          "(binary_data: true, tritonclient's default) or over gRPC")
    return chosen


def utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
