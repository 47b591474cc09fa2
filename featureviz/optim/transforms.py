"""What happens to the image at every step before the network sees it, as lucent's
optvis.transform: a list of functions of a (n, 3, h, w) batch, composed.

lucid's and lucent's `standard_transforms`, drawn from a seeded generator, change the image a
little at every step, so that the optimization cannot rely on any one pixel: pad 12 px of gray
(0.5), jitter 8 px, scale by one of 0.90, 0.92 ... 1.10, rotate by one of -10..10 degrees (0 drawn
six times as often), jitter 4 px. Shifts and rotations fill with black, scales and rotations are
bilinear: as lucent's, which builds them on kornia. `NetworkInput` ends the list, as lucent's
render_vis ends it with normalize and an upsample to 224 px."""
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..model.network import normalize

PAD = 12
JITTER_FIRST, JITTER_LAST = 8, 4
SCALES = [1 + (i - 5) / 50 for i in range(11)]
ANGLES = list(range(-10, 11)) + 5 * [0]


def pad(image: torch.Tensor, width: int, value: float = 0.5) -> torch.Tensor:
    return F.pad(image, [width] * 4, mode="constant", value=value)


def shift(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """The content moved dx px right and dy px down (dx, dy >= 0), black where it left."""
    h, w = image.shape[-2:]
    moved = torch.zeros_like(image)
    moved[..., dy:, dx:] = image[..., : h - dy, : w - dx]
    return moved


def scale(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear resize by `factor` (sides rounded up); a smaller image is padded back with black."""
    h, w = image.shape[-2:]
    new_h, new_w = math.ceil(factor * h), math.ceil(factor * w)
    resized = F.interpolate(image, size=(new_h, new_w), mode="bilinear", align_corners=True)
    pad_h, pad_w = max(0, math.ceil((h - new_h) / 2)), max(0, math.ceil((w - new_w) / 2))
    return F.pad(resized, [pad_w, pad_w, pad_h, pad_h])


def rotate(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotated by `degrees` about the centre (counter-clockwise on screen, as kornia and OpenCV
    turn), bilinear, black outside."""
    n, _, h, w = image.shape
    a = math.radians(degrees)
    # output -> input coordinates (normalized, pixel centres at +-1: a square stays square)
    theta = torch.tensor([[math.cos(a), -math.sin(a) * (h - 1) / (w - 1) if w > 1 else 0.0, 0.0],
                          [math.sin(a) * (w - 1) / (h - 1) if h > 1 else 0.0, math.cos(a), 0.0]],
                         dtype=image.dtype, device=image.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(image.shape), align_corners=True)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def compose(transforms: list):
    """One function applying `transforms` in order."""
    return functools.reduce(lambda inner, outer: lambda image: outer(inner(image)), transforms, lambda image: image)


def standard_transforms(seed: int) -> list:
    """lucent's standard_transforms, every random draw from one generator of `seed` (a draw per
    transform and call, the same for every image of the batch, as lucent's)."""
    draw = np.random.default_rng(seed)
    return [lambda image: pad(image, PAD),
            lambda image: shift(image, *(int(d) for d in draw.integers(0, JITTER_FIRST, 2))),
            lambda image: scale(image, SCALES[draw.integers(len(SCALES))]),
            lambda image: rotate(image, ANGLES[draw.integers(len(ANGLES))]),
            lambda image: shift(image, *(int(d) for d in draw.integers(0, JITTER_LAST, 2)))]


NETWORK_SIDE = 224  # lucent upsamples smaller images to this before the network


def network_side(size: int, upsampled_to: int = NETWORK_SIDE) -> int:
    """The side the network sees, before random transforms: `upsampled_to` when the image is smaller."""
    return max(size, upsampled_to)


class NetworkInput:
    """[0, 1] images of side `size` (or transformed from them) -> the network's input: normalized,
    then upsampled to `upsampled_to` if the image was smaller, channels_last."""

    def __init__(self, size: int, upsampled_to: int = NETWORK_SIDE):
        self.size, self.upsampled_to = size, upsampled_to

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        x = normalize(image)
        if self.size < self.upsampled_to:
            x = F.interpolate(x, size=(self.upsampled_to, self.upsampled_to), mode="bilinear", align_corners=True)
        return x.contiguous(memory_format=torch.channels_last)
