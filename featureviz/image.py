"""Images: the noise start, ImageNet normalization, upscale and blur, PNG, uploads."""
import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, PngImagePlugin

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_DECODE_PIXELS = 40_000_000  # an upload with more pixels than this is refused before decoding


class ImageError(ValueError):
    """Bytes that are not an image we can decode safely; `status` is the HTTP code to answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _stats(img):
    shape = (-1, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype, device=img.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype, device=img.device).view(shape)
    return mean, std


def normalize(img):
    """[0, 1] RGB (..., 3, H, W) -> the network's input space."""
    mean, std = _stats(img)
    return (img - mean) / std


def denormalize(x):
    mean, std = _stats(x)
    return x * std + mean


def start_noise(side: int, seed: int) -> torch.Tensor:
    """The article's start: uint8(uniform(150, 180)) / 255, as a (3, side, side) tensor."""
    rng = np.random.default_rng(seed)
    pixels = np.uint8(rng.uniform(150, 180, (side, side, 3))) / 255
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy()).float()


def upscale(img: torch.Tensor, side: int) -> torch.Tensor:
    """Bicubic resize of a (3, H, W) image to (3, side, side), as cv2.INTER_CUBIC."""
    return F.interpolate(img[None], size=(side, side), mode="bicubic", align_corners=False)[0]


def box_blur(img: torch.Tensor, k: int) -> torch.Tensor:
    """k x k mean filter with reflected borders, as cv2.blur (BORDER_REFLECT_101)."""
    if k <= 1:
        return img
    before, after = k // 2, k - 1 - k // 2
    padded = F.pad(img[None], (before, after, before, after), mode="reflect")
    kernel = torch.full((3, 1, k, k), 1.0 / (k * k), dtype=img.dtype, device=img.device)
    return F.conv2d(padded, kernel, groups=3)[0]


def to_png(img: torch.Tensor, text: dict | None = None) -> bytes:
    """(3, H, W) in [0, 1] -> RGB PNG bytes, with optional tEXt entries."""
    pixels = (img.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return encode_png(Image.fromarray(pixels, "RGB"), text)


LABEL_HEIGHT = 14


def grid_png(labels: list, pngs: list[bytes], text: dict | None = None) -> bytes:
    """Same-sized PNGs side by side in a near-square grid, each under a strip with its label."""
    images = [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]
    width, height = images[0].size
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    grid = Image.new("RGB", (cols * width, rows * (height + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(grid)
    for k, (label, image) in enumerate(zip(labels, images)):
        x, y = (k % cols) * width, (k // cols) * (height + LABEL_HEIGHT)
        draw.text((x + 2, y + 1), str(label), fill="black")
        grid.paste(image, (x, y + LABEL_HEIGHT))
    return encode_png(grid, text)


def encode_png(image: Image.Image, text: dict | None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, str(value))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def decode_image(data: bytes) -> Image.Image:
    """Upload bytes -> RGB PIL image. Refuses non-images and images too large to decode."""
    if not data:
        raise ImageError("data: empty; send JPEG or PNG bytes")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Exception:
        raise ImageError("data: not a JPEG or PNG image") from None
    if image.format not in ("JPEG", "PNG"):
        raise ImageError(f"data: {image.format} images are not accepted; send JPEG or PNG")
    width, height = image.size
    if width * height > MAX_DECODE_PIXELS:
        raise ImageError(
            f"data: image of {width}x{height} pixels is too large; at most {MAX_DECODE_PIXELS} pixels",
            status=413,
        )
    try:
        return image.convert("RGB")
    except Exception:
        raise ImageError("data: the image is truncated or corrupt") from None


def center_square(image: Image.Image, size: int) -> torch.Tensor:
    """Shorter side resized to `size` (bilinear, antialiased), center crop: (3, size, size) in [0, 1]."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    resized = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    cropped = resized.crop((left, top, left + size, top + size))
    pixels = np.asarray(cropped, dtype=np.float32) / 255
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())
