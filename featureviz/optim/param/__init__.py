"""How the optimized image is made, as lucent's optvis.param: a parameterization gives, stage by
stage, the tensors Adam steps and a function from them to the image the transforms take.

    pixel.py   the article's: the pixels themselves, multi-scale (upscale and blur between scales)
    fft.py     lucent's: a spectrum scaled by 1/frequency, colours decorrelated (color.py), one scale

A parameterization also says what its picture is as it stands (`picture`), and the network input
on which its activations are measured (`measure_input`).
"""
from dataclasses import dataclass
from typing import Callable, Protocol

import torch


@dataclass
class Stage:
    """One scale of the optimization: Adam steps `parameters` `steps` times at `lr`; `image()`
    gives what the transforms take (for the article's pixels, already the network's input)."""
    side: int
    parameters: list
    image: Callable[[], torch.Tensor]
    steps: int
    lr: float
    weight_decay: float = 0.0


class Param(Protocol):
    stages: int

    def stage(self, index: int) -> Stage:
        """Stage `index` (0, 1, ...), made from the picture as it stands."""

    def end_stage(self, stage: Stage) -> None:
        """The picture from the stage's optimized tensors."""

    def finish(self) -> None:
        """The picture as it is returned (after the last stage)."""

    def picture(self) -> torch.Tensor:
        """(3, H, W) in [0, 1]: the image as it stands (images drawn together: tiled)."""

    def measure_input(self) -> torch.Tensor:
        """The network input of the picture as it stands, without random transforms."""
