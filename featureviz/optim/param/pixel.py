"""The article's parameterization: the pixels themselves, optimized scale by scale.

The optimized tensor is the image in the network's input space (ImageNet-normalized), as the
article's `img_var`. It starts as the article's noise; between scales the image is denormalized,
upscaled (bicubic, as cv2.INTER_CUBIC) to the next side and box blurred (as cv2.blur); the image
of the last scale, clipped to [0, 1], is the result. It needs no transforms: each step feeds the
optimized tensor to the network as it is.
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...model.network import denormalize, normalize
from . import Stage

WEIGHT_DECAY = 1e-6  # Adam's, as the article


@dataclass(frozen=True)
class Schedule:
    size: int = 56
    upscaling_steps: int = 12
    upscaling_factor: float = 1.2
    opt_steps: int = 20
    lr: float = 0.1
    blur: int | None = 5

    def sides(self):
        """Side of the image optimized at each scale."""
        sides, side = [], self.size
        for _ in range(self.upscaling_steps):
            sides.append(side)
            side = int(self.upscaling_factor * side)
        return sides


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


class PixelImage:
    """One image of `schedule`, from the noise of `seed`."""

    def __init__(self, schedule: Schedule, seed: int, device: torch.device):
        self.schedule = schedule
        self.sides = schedule.sides()
        self.stages = len(self.sides)
        self.image = start_noise(schedule.size, seed).to(device)  # (3, side, side) in [0, 1]

    def stage(self, index: int) -> Stage:
        side = self.sides[index]
        if index > 0:
            self.image = upscale(self.image, side)
            if self.schedule.blur is not None:
                self.image = box_blur(self.image, self.schedule.blur)
        x = normalize(self.image)[None].contiguous(memory_format=torch.channels_last).requires_grad_(True)
        return Stage(side, [x], lambda: x, self.schedule.opt_steps, self.schedule.lr, WEIGHT_DECAY)

    def end_stage(self, stage: Stage) -> None:
        self.image = denormalize(stage.parameters[0].detach()[0])

    def finish(self) -> None:
        self.image = self.image.clamp(0, 1)

    def picture(self) -> torch.Tensor:
        return self.image

    def measure_input(self) -> torch.Tensor:
        return normalize(self.image)[None]
