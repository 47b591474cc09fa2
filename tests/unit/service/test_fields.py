"""Request validation: every refusal names its field and what is accepted."""
import io

import pytest
from PIL import Image

from featureviz.optim.param.pixel import Schedule
from featureviz.service.operations.visualize.request import MAX_PIXEL_STEPS, parse_visualize
from featureviz.service.refusals import BadRequest
from tests.support.images import png
from tests.support.operations import operation_of


def parse_activations(fields, engine):
    return operation_of(engine, "activations").parse(fields)


def test_defaults_are_the_articles(engine):
    request = parse_visualize({"filter": 3}, engine)
    assert (request.layer, request.filter, request.seed) == (40, 3, 0)
    assert request.schedule == Schedule(56, 12, 1.2, 20, 0.1, 5)


def test_text_values_as_from_forms_and_grpc(engine):
    request = parse_visualize({"layer": b"7", "filter": "12", "lr": b"0.05", "blur": b"null",
                               "upscaling_factor": "1.1", "seed": b" 9 "}, engine)
    assert (request.layer, request.filter, request.seed) == (7, 12, 9)
    assert request.schedule.lr == 0.05 and request.schedule.blur is None
    assert request.schedule.upscaling_factor == 1.1
    assert parse_visualize({"filter": 1, "blur": None}, engine).schedule.blur is None


@pytest.mark.parametrize("fields, field, words", [
    ({}, "filter", "required"),
    ({"filter": 1, "colour": 3}, "colour", "unknown field"),
    ({"filter": 1, "layer": 44}, "layer", "out of range"),
    ({"filter": 1, "layer": -1}, "layer", "out of range"),
    ({"filter": 1, "layer": "conv5"}, "layer", "not an integer"),
    ({"filter": 1, "layer": 7.5}, "layer", "not an integer"),
    ({"filter": True}, "filter", "not an integer"),
    ({"filter": 512}, "filter", "0..511"),
    ({"filter": 128, "layer": 7}, "filter", "0..127"),
    ({"filter": 1, "size": 0}, "size", "out of range"),
    ({"filter": 1, "size": 8}, "size", "at least 16"),
    ({"filter": 1, "lr": 0}, "lr", "out of range"),
    ({"filter": 1, "lr": "nan"}, "lr", "not a number"),
    ({"filter": 1, "blur": 0}, "blur", "out of range"),
    ({"filter": 1, "blur": 30, "size": 20}, "blur", "larger than the image"),
    ({"filter": 1, "opt_steps": 10_000}, "opt_steps", "out of range"),
    ({"filter": 1, "opt_steps": 50}, "opt_steps", str(MAX_PIXEL_STEPS)),
    ({"filter": 1, "upscaling_factor": 2.0}, "upscaling_steps", "at most 1024"),
    ({"filter": 1, "seed": -1}, "seed", "out of range"),
    ({"filter": b"\xff\xfe"}, "filter", "UTF-8"),
    ({"filter": [1, 2]}, "filter", "not an integer"),
])
def test_visualize_refusals(engine, fields, field, words):
    with pytest.raises(BadRequest) as caught:
        parse_visualize(fields, engine)
    error = caught.value
    assert error.status == 400 and error.field == field
    assert words in error.message
    body = error.body()
    assert body["field"] == field and body["code"] == 400 and body["message"].startswith(field)


def test_activations_fields_and_image(engine):
    request = parse_activations({"data": png(), "layer": b"20", "size": b"32"}, engine)
    assert request.values == {"layer": 20, "size": 32} and request.image.shape == (3, 32, 32)
    request = parse_activations({"data": bytearray(png(fmt="JPEG"))}, engine)
    assert request.values == {"layer": 42, "size": 224} and request.image.shape == (3, 224, 224)


def test_center_square_keeps_the_middle(engine):
    out = io.BytesIO()
    image = Image.new("RGB", (90, 30), (255, 0, 0))
    image.paste((0, 0, 255), (30, 0, 60, 30))  # a blue middle third
    image.save(out, format="PNG")
    request = parse_activations({"data": out.getvalue(), "size": 30}, engine)
    assert request.image[2].mean() > 0.95 and request.image[0].mean() < 0.05


@pytest.mark.parametrize("fields, field, status, words", [
    ({}, "data", 400, "missing"),
    ({"data": "text, not bytes"}, "data", 400, "got JSON"),
    ({"data": b""}, "data", 400, "empty"),
    ({"data": b"hello, not an image"}, "data", 400, "not a JPEG or PNG"),
    ({"data": png(fmt="GIF")}, "data", 400, "GIF"),
    ({"data": png()[:60]}, "data", 400, "truncated or corrupt"),
    ({"data": png(), "layer": 99}, "layer", 400, "out of range"),
    ({"data": png(), "size": 5000}, "size", 400, "out of range"),
    ({"data": png(), "size": 16, "layer": 43}, "size", 400, "at least 32"),
    ({"data": png(), "filter": 3}, "filter", 400, "unknown field"),
    ({"data": png(8000, 6000)}, "data", 413, "too large"),
])
def test_activations_refusals(engine, fields, field, status, words):
    with pytest.raises(BadRequest) as caught:
        parse_activations(fields, engine)
    assert (caught.value.field, caught.value.status) == (field, status)
    assert words in caught.value.message


def test_request_fields_from_a_body_or_named_parts():
    from featureviz.service.fields import request_fields
    assert request_fields({"filter": 1}, {}, body_is_image=False) == {"filter": 1}
    assert request_fields(bytearray(b'{"filter": 1}'), {}, body_is_image=False) == {"filter": 1}
    assert request_fields('{"filter": 1}', {}, body_is_image=False) == {"filter": 1}  # a text/* body
    assert request_fields(b"  ", {}, body_is_image=False) == {}
    parts = {"filter": b"1", "layer": b"7"}
    assert request_fields(None, parts, body_is_image=False) == parts
    assert request_fields(bytearray(b"\x89PNG..."), {"layer": b"3"}, body_is_image=True) == {
        "layer": b"3", "data": b"\x89PNG..."}
    deep = b"[" * 5000 + b"]" * 5000
    for body, words in ((b"{oops", "not valid JSON"), (b"[1]", "JSON object"), (["x"], "got JSON list"),
                        (deep, "nested too deeply"), (b'{"filter": ' + deep + b"}", "nested too deeply")):
        with pytest.raises(BadRequest) as caught:
            request_fields(body, {}, body_is_image=False)
        assert caught.value.field == "body" and words in caught.value.message


@pytest.mark.parametrize("raw", [[3, 5, 9], "3,5,9", b" 3, 5,9", b"[3, 5, 9]"])
def test_filters_as_a_list_or_text(engine, raw):
    request = parse_visualize({"layer": 7, "filters": raw}, engine)
    assert request.filters == (3, 5, 9)
    assert [single.filter for single in request.singles()] == [3, 5, 9]
    assert all(single.filters is None and single.layer == 7 for single in request.singles())
    assert parse_visualize({"filter": 4}, engine).singles()[0].filter == 4


@pytest.mark.parametrize("fields, words", [
    ({"filter": 1, "filters": [2]}, "not both"),
    ({"filters": []}, "not a list"),
    ({"filters": [1, 1]}, "different integers"),
    ({"filters": [1, True]}, "different integers"),
    ({"filters": "1,x"}, "not a list"),
    ({"filters": list(range(65))}, "1 to 64"),
    ({"layer": 7, "filters": [1, 128]}, "0..127"),
    ({"filters": list(range(9))}, "send fewer filters"),
    ({"filters": [2, 2]}, "'[2, 2]' is not a list"),  # a flat list is quoted
    ({"filters": [[1], 2]}, "a JSON list is not a list"),  # a nested one by its kind alone
])
def test_filters_refusals(engine, fields, words):
    with pytest.raises(BadRequest) as caught:
        parse_visualize(fields, engine)
    assert caught.value.field == "filters" and words in caught.value.message
