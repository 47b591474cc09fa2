"""Uploaded images: decoded safely, then resized and cropped to the square the network sees. An
image comes as JPEG or PNG bytes, or as decoded pixels: a (H, W, 3) uint8 array (an Open Inference
Protocol UINT8 tensor), checked against the same limits from its shape."""
import io

import numpy as np
import torch
from PIL import Image

from .fields import Field, parse_fields
from .refusals import BadRequest

MAX_DECODE_PIXELS = 40_000_000  # an upload with more pixels than this is refused before decoding
# The image resized (shorter side to `size`, before the crop) with more pixels than this is refused
# before decoding: a 1 x 100000 image would otherwise become 224 x 22.4 million.
MAX_RESIZED_PIXELS = 4096 * 4096
IMAGE_FIELD = "data"  # where an upload arrives (a raw body becomes this field too)


def parse_upload(fields: dict, specs: list[Field]) -> tuple[dict, torch.Tensor]:
    """An image request's fields -> (validated values, (3, size, size) image in [0, 1]).
    `specs` must include `size`: the shorter side is resized to it and the center cropped."""
    if IMAGE_FIELD not in fields:
        raise BadRequest("data", "missing; send a JPEG or PNG image as the request body or as the field 'data'")
    data = fields[IMAGE_FIELD]
    if not isinstance(data, (bytes, bytearray, np.ndarray)):
        raise BadRequest("data", "expected JPEG or PNG bytes (the request body or the field 'data'), got JSON")
    values = parse_fields(fields, specs, ignore=(IMAGE_FIELD,))
    try:
        if isinstance(data, np.ndarray):
            image = image_of_pixels(data, values["size"])
        else:
            image = decode_image(bytes(data), values["size"])
    except ImageError as error:
        raise BadRequest("data", str(error), error.status) from None
    return values, center_square(image, values["size"])


class ImageError(ValueError):
    """Bytes that are not an image we can decode safely; `status` is the HTTP code to answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, size: int | None = None) -> Image.Image:
    """Upload bytes -> RGB PIL image. Refuses non-images, images too large to decode and, given the
    `size` of center_square, images whose resized size would pass MAX_RESIZED_PIXELS: all from the
    header, before any pixel is decoded."""
    if not data:
        raise ImageError("empty; send JPEG or PNG bytes")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Exception:
        raise ImageError("not a JPEG or PNG image") from None
    if image.format not in ("JPEG", "PNG"):
        raise ImageError(f"{image.format} images are not accepted; send JPEG or PNG")
    check_dimensions(*image.size, size)
    try:
        return image.convert("RGB")
    except Exception:
        raise ImageError("the image is truncated or corrupt") from None


def image_of_pixels(pixels: np.ndarray, size: int | None = None) -> Image.Image:
    """Decoded pixels, a (H, W, 3) uint8 array -> RGB PIL image, refused as decode_image refuses an
    image of that width and height."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError(f"pixels must be uint8 of shape (H, W, 3), got {pixels.dtype} of shape {list(pixels.shape)}")
    height, width = pixels.shape[:2]
    if not width or not height:
        raise ImageError(f"image of {width}x{height} pixels is empty")
    check_dimensions(width, height, size)
    return Image.fromarray(np.ascontiguousarray(pixels))


def check_dimensions(width: int, height: int, size: int | None):
    """Refuses an image too large to decode (413) and, given center_square's `size`, one whose
    resized size would pass MAX_RESIZED_PIXELS."""
    if width * height > MAX_DECODE_PIXELS:
        raise ImageError(
            f"image of {width}x{height} pixels is too large; at most {MAX_DECODE_PIXELS} pixels",
            status=413,
        )
    if size is not None:
        check_resized(width, height, size)


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """center_square's image before its crop: the shorter side resized to `size`."""
    scale = size / min(width, height)
    return max(size, round(width * scale)), max(size, round(height * scale))


def check_resized(width: int, height: int, size: int):
    """Refuses an image whose every stage in center_square (resized, then size x size) would pass
    MAX_RESIZED_PIXELS, whatever its aspect ratio."""
    new_w, new_h = resized_size(width, height, size)
    if max(new_w * new_h, size * size) > MAX_RESIZED_PIXELS:
        raise ImageError(
            f"image of {width}x{height} pixels would be {new_w}x{new_h} once its shorter side is resized to "
            f"{size}; at most {MAX_RESIZED_PIXELS} pixels after resizing (an aspect ratio of at most "
            f"{MAX_RESIZED_PIXELS // (size * size)}:1 at size {size}); crop it, or send a smaller size")


def center_square(image: Image.Image, size: int) -> torch.Tensor:
    """Shorter side resized to `size` (bilinear, antialiased), center crop: (3, size, size) in [0, 1]."""
    width, height = image.size
    check_resized(width, height, size)
    new_w, new_h = resized_size(width, height, size)
    resized = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    cropped = resized.crop((left, top, left + size, top + size))
    pixels = np.asarray(cropped, dtype=np.float32) / 255
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())
