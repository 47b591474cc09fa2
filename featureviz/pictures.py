"""Pictures a person can read, as PNG: an image, a labelled grid, heatmaps over the image, signed
reconstructions, kernel grids, tables."""
import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

HEATMAP_ALPHA = 0.5
LABEL_HEIGHT = 14
GAP = 4  # white pixels between the images of a tiled grid (lucent's diversity images)
KERNEL_TILE = 32  # px: a 3x3 kernel is drawn as 3x3 blocks of this side / 3


def unit(values: torch.Tensor) -> torch.Tensor:
    """Min-max scaled to [0, 1]; a constant map becomes zeros."""
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else torch.zeros_like(values)


def signed_unit(values: torch.Tensor) -> torch.Tensor:
    """Zero at 0.5 gray, the largest |value| at 0 or 1."""
    peak = values.abs().max()
    return 0.5 + values / (2 * peak) if peak > 0 else torch.full_like(values, 0.5)


def jet(values: torch.Tensor) -> torch.Tensor:
    """(H, W) in [0, 1] -> (3, H, W) RGB, blue low and red high."""
    from matplotlib import colormaps  # only where a heatmap is drawn: a visualize worker needs no matplotlib
    rgba = colormaps["jet"](values.clamp(0, 1).cpu().numpy())
    return torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).float()


def heatmap_over(image: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """(3, S, S) image and an (h, w) map -> the image and, beside it, the map (scaled to the image,
    min-max normalized, jet colours) blended over it: (3, S, 2S)."""
    side = image.shape[-2:]
    scaled = F.interpolate(heat[None, None].float(), size=side, mode="bilinear", align_corners=False)[0, 0]
    blended = (1 - HEATMAP_ALPHA) * image.cpu() + HEATMAP_ALPHA * jet(unit(scaled))
    return side_by_side(image.cpu(), blended)


def side_by_side(*images: torch.Tensor) -> torch.Tensor:
    return torch.cat([img.cpu() for img in images], dim=-1)


def tiled(images: torch.Tensor) -> torch.Tensor:
    """(n, 3, s, s) -> one (3, H, W) image: the n images in a near-square grid, white between."""
    n, _, s, _ = images.shape
    if n == 1:
        return images[0]
    cols = math.ceil(math.sqrt(n))
    rows = -(-n // cols)
    grid = torch.ones(3, rows * s + (rows - 1) * GAP, cols * s + (cols - 1) * GAP, dtype=images.dtype)
    for k in range(n):
        r, c = divmod(k, cols)
        grid[:, r * (s + GAP): r * (s + GAP) + s, c * (s + GAP): c * (s + GAP) + s] = images[k].cpu()
    return grid


def kernel_grid(weights: torch.Tensor, labels: list, text: dict | None = None) -> bytes:
    """(N, C, k, k) kernels -> PNG grid, one labelled tile per kernel: RGB when C == 3, otherwise
    gray (the mean over input channels). Scaled together, so tiles compare: gray 0.5 is zero."""
    tiles = weights if weights.shape[1] == 3 else weights.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    tiles = signed_unit(tiles)
    block = math.ceil(KERNEL_TILE / tiles.shape[-1])
    tiles = tiles.repeat_interleave(block, dim=-1).repeat_interleave(block, dim=-2)
    return grid_png(labels, [to_png(tile) for tile in tiles], text)


def table_png(columns: list[str], rows: list[list], text: dict | None = None) -> bytes:
    """A plain text table, one line per row, in PIL's built-in fixed-width bitmap font."""
    cells = [columns] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    char_w, line_h = 6, 12
    image = Image.new("RGB", (8 + char_w * max(map(len, lines)), 8 + line_h * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for k, line in enumerate(lines):
        draw.text((4, 4 + k * line_h), line, fill="black", font=ImageFont.load_default_imagefont())
    return encode_png(image, text)


def rgb_bytes(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8, as every PNG of it holds it."""
    return (img.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def to_png(img: torch.Tensor, text: dict | None = None) -> bytes:
    """(3, H, W) in [0, 1] -> RGB PNG bytes, with optional tEXt entries."""
    return encode_png(Image.fromarray(rgb_bytes(img), "RGB"), text)


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
