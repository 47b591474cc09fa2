"""KServe's v1 protocol through the handler: {"instances": [...]} in, {"predictions": [...]} out,
each prediction what the same request alone gets."""
import base64
import json

import pytest

from tests.support import TINY
from tests.support.images import png
from tests.support.handler import call, make_handler

IMAGE = png(40, 40)


@pytest.fixture(scope="module")
def handlers(model_dir):
    return {name: make_handler(name, model_dir) for name in ("visualize", "activations")}


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def test_activations_instances_are_predictions_equal_to_lone_answers(handlers):
    handler = handlers["activations"]
    fields = [{"layer": 14, "size": 32}, {"layer": 7, "size": 24}]
    out, statuses, types, _ = call(handler, [{"body": {"instances": [{"data": b64(IMAGE), **f} for f in fields]}}])
    assert statuses == [200] and types == ["application/json"]
    predictions = json.loads(out[0])["predictions"]
    alone = [json.loads(call(handler, [{"data": IMAGE, **{k: str(v) for k, v in f.items()}}])[0][0]) for f in fields]
    assert predictions == alone
    assert [p["layer"] for p in predictions] == [14, 7] and len(predictions[0]["means"]) == 256


def test_visualize_instances_carry_each_png_as_base64(handlers):
    handler = handlers["visualize"]
    fields = [{"layer": 7, "filter": f, **TINY} for f in (3, 4)]
    out, statuses, _, headers = call(handler, [{"body": {"instances": fields}}])
    assert statuses == [200] and headers[0]["X-Model-Version"] == "1.0"
    predictions = json.loads(out[0])["predictions"]
    assert [p["content_type"] for p in predictions] == ["image/png"] * 2
    assert {p["cache"] for p in predictions} <= {"hit", "miss"}
    for fields_one, p in zip(fields, predictions):
        assert base64.b64decode(p["b64"]) == call(handler, [{"body": fields_one}])[0][0]
    assert predictions[0]["b64"] != predictions[1]["b64"]


@pytest.mark.parametrize("body, field, status", [
    ({"instances": [{"layer": 7, "filter": 3, **TINY}, {"layer": 7, "filter": 999, **TINY}]}, "instances[1].filter", 400),
    ({"instances": [{"layer": 7, **TINY}]}, "instances[0].filter", 400),
    ({"instances": []}, "instances", 400),
    ({"instances": {"filter": 3}}, "instances", 400),
    ({"instances": [3]}, "instances", 400),
    ({"instances": [{"filter": 3}] * 17}, "instances", 400),
    ({"instances": [{"filter": 3}], "signature": "x"}, "signature", 400),
])
def test_a_bad_instance_refuses_the_body_naming_it(handlers, body, field, status):
    out, statuses, types, _ = call(handlers["visualize"], [{"body": body}])
    assert statuses == [status] and types == ["application/json"]
    assert json.loads(out[0])["field"] == field


def test_undecodable_base64_is_refused_naming_the_field(handlers):
    out, statuses, _, _ = call(handlers["activations"], [{"body": {"instances": [{"data": {"b64": "not base64!"}}]}}])
    assert statuses == [400] and json.loads(out[0])["field"] == "instances[0].data"
    out, statuses, _, _ = call(handlers["activations"], [{"body": {"instances": [{"data": b64(b"not an image")}]}}])
    assert statuses == [400] and json.loads(out[0])["field"] == "instances[0].data"


def test_an_instances_body_and_plain_requests_share_a_batch(handlers):
    handler = handlers["visualize"]
    plain = {"layer": 7, "filter": 5, **TINY}
    out, statuses, types, _ = call(handler, [{"body": plain}, {"body": {"instances": [plain]}},
                                             {"body": {"layer": 7}}])
    assert statuses == [200, 200, 400]
    assert types == ["image/png", "application/json", "application/json"]
    assert base64.b64decode(json.loads(out[1])["predictions"][0]["b64"]) == out[0]
