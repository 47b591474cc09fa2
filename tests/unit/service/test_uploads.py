"""Uploads whose resized size would pass the limit are refused from the header, before any pixel
is decoded, for every operation that takes an image, whatever the aspect ratio; decoded pixels (a
(H, W, 3) uint8 array) are the PNG of those pixels, refused from their shape alone."""
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from featureviz.service.refusals import BadRequest
from featureviz.service.operations import OPERATIONS
from tests.support.operations import operation_of
from featureviz.service.uploads import MAX_DECODE_PIXELS, MAX_RESIZED_PIXELS, center_square, resized_size
from tests.support.images import photo, png

IMAGE_OPERATIONS = [name for name, op in OPERATIONS.items() if op.body_is_image]
MAX_SIZE = {name: next(f.high for f in OPERATIONS[name].fields if f.name == "size") for name in IMAGE_OPERATIONS}


def forbid_decoding(monkeypatch):
    """From now on, decoding pixels (PIL's load) fails the test."""
    def load(self):
        raise AssertionError("pixels were decoded")
    monkeypatch.setattr(Image.Image, "load", load)
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def parse(engine, operation, data, **fields):
    return operation_of(engine, operation).parse({"data": data, **{k: str(v) for k, v in fields.items()}})


def test_the_image_operations_are_the_five():
    assert sorted(IMAGE_OPERATIONS) == ["activations", "deconv", "gradcam", "occlusion", "saliency"]


@pytest.mark.parametrize("operation", IMAGE_OPERATIONS)
@pytest.mark.parametrize("width, height", [(1, 100_000), (100_000, 1), (3, 60_000), (60_000, 3)])
def test_an_extreme_aspect_ratio_is_a_400_naming_data_before_decoding(engine, monkeypatch, operation,
                                                                       width, height):
    data = png(width, height)
    forbid_decoding(monkeypatch)
    with pytest.raises(BadRequest) as caught:
        parse(engine, operation, data)  # size 224, the default of each
    refusal = caught.value
    assert refusal.status == 400 and refusal.field == "data"
    assert f"{width}x{height}" in refusal.message and str(MAX_RESIZED_PIXELS) in refusal.message
    long_side = round(max(width, height) * 224 / min(width, height))
    assert f"{long_side}x224" in refusal.message or f"224x{long_side}" in refusal.message


def boundary_images(size):
    """(just under or at the limit, just over): images whose shorter side, 16 px, is resized to size."""
    scale = size / 16
    longest = MAX_RESIZED_PIXELS // size  # the longest resized side within the limit
    under = max(n for n in range(1, longest) if round(n * scale) <= longest)
    over = under + 1
    assert size * round(under * scale) <= MAX_RESIZED_PIXELS < size * round(over * scale)
    return under, over


@pytest.mark.parametrize("operation", IMAGE_OPERATIONS)
@pytest.mark.parametrize("tall", [False, True])
def test_sizes_just_under_and_just_over_the_limit(engine, operation, tall):
    size = MAX_SIZE[operation]
    under, over = boundary_images(size)
    shape = (lambda n: (16, n)) if tall else (lambda n: (n, 16))
    work = {"window": 64, "stride": 64} if operation == "occlusion" else {}  # within its compute limit
    request = parse(engine, operation, png(*shape(under)), size=size, **work)
    assert request.image.shape == (3, size, size)
    with pytest.raises(BadRequest) as caught:
        parse(engine, operation, png(*shape(over)), size=size, **work)
    assert caught.value.status == 400 and caught.value.field == "data"
    assert "x".join(map(str, shape(over))) in caught.value.message


def test_a_small_size_allows_a_longer_image(engine):
    # 1 x 100000 at size 1 is 1 x 100000 after resizing: within the limit
    assert resized_size(1, 100_000, 1) == (1, 100_000)
    request = parse(engine, "activations", png(1, 100_000), size=1, layer=0)
    assert request.image.shape == (3, 1, 1)


def test_center_square_refuses_too_on_its_own():
    with pytest.raises(ValueError, match="at most"):
        center_square(Image.new("RGB", (1, 100_000)), 224)


def decoded(data: bytes):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("operation", IMAGE_OPERATIONS)
def test_pixels_as_an_array_are_the_png_of_those_pixels(engine, operation):
    data = photo(40)
    from_png = parse(engine, operation, data, size=32)
    from_pixels = parse(engine, operation, decoded(data), size=32)
    assert from_pixels.values == from_png.values
    assert torch.equal(from_pixels.image, from_png.image)


@pytest.mark.parametrize("width, height", [(1, 100_000), (60_000, 3)])
def test_pixels_of_an_extreme_aspect_ratio_are_refused_as_the_png_is(engine, monkeypatch, width, height):
    pixels = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (height, width, 3))
    with pytest.raises(BadRequest) as as_png:
        parse(engine, "activations", png(width, height))
    forbid_decoding(monkeypatch)
    with pytest.raises(BadRequest) as as_pixels:
        parse(engine, "activations", pixels)
    assert (as_pixels.value.status, as_pixels.value.field) == (400, "data")
    assert as_pixels.value.message == as_png.value.message


def test_too_many_pixels_are_a_413_from_the_shape_alone(engine):
    pixels = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (7_000, 6_000, 3))  # no memory behind it
    with pytest.raises(BadRequest) as caught:
        parse(engine, "activations", pixels, size=1)
    assert (caught.value.status, caught.value.field) == (413, "data")
    assert "6000x7000" in caught.value.message and str(MAX_DECODE_PIXELS) in caught.value.message


@pytest.mark.parametrize("dtype, shape", [("float32", (8, 8, 3)), ("uint8", (8, 8)), ("uint8", (8, 8, 4)),
                                          ("uint8", (0, 8, 3))])
def test_pixels_not_uint8_of_h_w_3_are_a_400_naming_data(engine, dtype, shape):
    with pytest.raises(BadRequest) as caught:
        parse(engine, "activations", np.zeros(shape, dtype), size=8)
    assert (caught.value.status, caught.value.field) == (400, "data")
    assert str(list(shape)) in caught.value.message or "empty" in caught.value.message
