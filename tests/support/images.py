"""Pictures the tests send: plain PNGs of a size, a smooth synthetic photo, a real photograph."""
import io

import numpy as np
import torch
from PIL import Image

from featureviz.service.uploads import center_square, decode_image


def png(width=40, height=30, fmt="PNG"):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 30, 200)).save(out, format=fmt)
    return out.getvalue()



def photo(size=48):
    """A smooth colour image (PNG bytes), less degenerate than noise for gradients."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    pixels = torch.stack([x, y, (x * 6).sin() * 0.5 + 0.5]) * 255
    out = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).byte().numpy()).save(out, "PNG")
    return out.getvalue()


def pixels(size, data=None):
    return center_square(decode_image(data or photo()), size)[None]



PHOTO = "docs/images/chelsea.jpg"  # a real photograph (scikit-image's Chelsea the cat)


def photo_224() -> np.ndarray:
    """Chelsea as the service's upload path makes it at size 224 (resize, center crop), as uint8."""
    pixels = center_square(Image.open(PHOTO).convert("RGB"), 224)  # k / 255: exact back to uint8
    return (pixels * 255).round().byte().permute(1, 2, 0).numpy()


def png_of(rgb_uint8: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb_uint8).save(out, format="PNG")
    return out.getvalue()

