"""The optimized image: the article's noise start and its multi-scale schedule."""
from dataclasses import dataclass

import numpy as np
import torch


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
