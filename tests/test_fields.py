"""Request validation: every refusal names its field and what is accepted."""
import io

import pytest
from PIL import Image

from featureviz.fields import BadRequest
from featureviz.operations import MAX_PIXEL_STEPS, parse_activations, parse_visualize
from featureviz.render import Schedule


def png(width=40, height=30, fmt="PNG"):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 30, 200)).save(out, format=fmt)
    return out.getvalue()


def test_defaults_are_the_articles(features):
    request = parse_visualize({"filter": 3}, features)
    assert (request.layer, request.filter, request.seed) == (40, 3, 0)
    assert request.schedule == Schedule(56, 12, 1.2, 20, 0.1, 5)


def test_text_values_as_from_forms_and_grpc(features):
    request = parse_visualize({"layer": b"7", "filter": "12", "lr": b"0.05", "blur": b"null",
                               "upscaling_factor": "1.1", "seed": b" 9 "}, features)
    assert (request.layer, request.filter, request.seed) == (7, 12, 9)
    assert request.schedule.lr == 0.05 and request.schedule.blur is None
    assert request.schedule.upscaling_factor == 1.1
    assert parse_visualize({"filter": 1, "blur": None}, features).schedule.blur is None


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
def test_visualize_refusals(features, fields, field, words):
    with pytest.raises(BadRequest) as caught:
        parse_visualize(fields, features)
    error = caught.value
    assert error.status == 400 and error.field == field
    assert words in error.message
    body = error.body()
    assert body["field"] == field and body["code"] == 400 and body["message"].startswith(field)


def test_activations_fields_and_image(features):
    request = parse_activations({"data": png(), "layer": b"20", "size": b"32"}, features)
    assert (request.layer, request.size) == (20, 32) and request.image.shape == (3, 32, 32)
    request = parse_activations({"body": bytearray(png(fmt="JPEG"))}, features)
    assert (request.layer, request.size) == (42, 224) and request.image.shape == (3, 224, 224)


def test_center_square_keeps_the_middle(features):
    out = io.BytesIO()
    image = Image.new("RGB", (90, 30), (255, 0, 0))
    image.paste((0, 0, 255), (30, 0, 60, 30))  # a blue middle third
    image.save(out, format="PNG")
    request = parse_activations({"data": out.getvalue(), "size": 30}, features)
    assert request.image[2].mean() > 0.95 and request.image[0].mean() < 0.05


@pytest.mark.parametrize("fields, field, status, words", [
    ({}, "data", 400, "missing"),
    ({"body": {"layer": 3}}, "data", 400, "got JSON"),
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
def test_activations_refusals(features, fields, field, status, words):
    with pytest.raises(BadRequest) as caught:
        parse_activations(fields, features)
    assert (caught.value.field, caught.value.status) == (field, status)
    assert words in caught.value.message


def test_request_fields_from_each_shape_a_model_server_hands_over():
    from featureviz.fields import request_fields
    assert request_fields({"body": {"filter": 1}}, body_is_json=True) == {"filter": 1}
    assert request_fields({"body": bytearray(b'{"filter": 1}')}, body_is_json=True) == {"filter": 1}
    assert request_fields({"body": b"  "}, body_is_json=True) == {}
    assert request_fields({"filter": b"1", "layer": b"7"}, body_is_json=True) == {"filter": b"1", "layer": b"7"}
    image = {"body": bytearray(b"\x89PNG...")}
    assert request_fields(image, body_is_json=False) == image
    for body, words in ((b"{oops", "not valid JSON"), (b"[1]", "JSON object"), (["x"], "got JSON list")):
        with pytest.raises(BadRequest) as caught:
            request_fields({"body": body}, body_is_json=True)
        assert caught.value.field == "body" and words in caught.value.message


@pytest.mark.parametrize("raw", [[3, 5, 9], "3,5,9", b" 3, 5,9", b"[3, 5, 9]"])
def test_filters_as_a_list_or_text(features, raw):
    request = parse_visualize({"layer": 7, "filters": raw}, features)
    assert request.filters == (3, 5, 9)
    assert [single.filter for single in request.singles()] == [3, 5, 9]
    assert all(single.filters is None and single.layer == 7 for single in request.singles())
    assert parse_visualize({"filter": 4}, features).singles()[0].filter == 4


@pytest.mark.parametrize("fields, words", [
    ({"filter": 1, "filters": [2]}, "not both"),
    ({"filters": []}, "not a list"),
    ({"filters": [1, 1]}, "different integers"),
    ({"filters": [1, True]}, "different integers"),
    ({"filters": "1,x"}, "not a list"),
    ({"filters": list(range(65))}, "1 to 64"),
    ({"layer": 7, "filters": [1, 128]}, "0..127"),
    ({"filters": list(range(9))}, "send fewer filters"),
])
def test_filters_refusals(features, fields, words):
    with pytest.raises(BadRequest) as caught:
        parse_visualize(fields, features)
    assert caught.value.field == "filters" and words in caught.value.message
