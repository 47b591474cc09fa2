"""Activation maximization by the article's multi-scale method.

Per scale: a fresh leaf tensor from the image and a fresh Adam, `opt_steps` steps of
-mean(activation of the filter), denormalize, bicubic upscale by `upscaling_factor`, box blur.
The image of the last scale, clipped to [0, 1], is the result.
"""
from dataclasses import dataclass, field

import torch

from .hooks import LayerOutput
from .image import box_blur, denormalize, normalize, start_noise, upscale
from .network import device_of, single_channel

WEIGHT_DECAY = 1e-6


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


@dataclass
class Visualization:
    image: torch.Tensor  # (3, H, W) in [0, 1], on the CPU
    activation_start: float  # mean activation of the filter for the noise start
    activation_final: float  # ... and for the returned image
    activation_per_scale: list = field(default_factory=list)  # at the last step of each scale


def _filter_mean(capture):
    return capture.output[0, 0].mean()  # the network below computes only the filter's channel


def visualize(features, layer: int, filter: int, schedule: Schedule = Schedule(), seed: int = 0):
    """Optimize an image that maximizes the mean activation of `filter` at `features[layer]`."""
    device = device_of(features)
    # Only what the target needs: the layers up to it, and of the last ones only the filter's channel.
    net = single_channel(features, layer, filter)
    per_scale = []
    with LayerOutput(net[-1]) as capture:
        img = start_noise(schedule.size, seed).to(device)
        with torch.no_grad():
            net(normalize(img)[None])
            start = _filter_mean(capture).detach()
        sides = schedule.sides()
        for scale, side in enumerate(sides):
            if scale > 0:
                img = upscale(img, side)
                if schedule.blur is not None:
                    img = box_blur(img, schedule.blur)
            x = normalize(img)[None].contiguous(memory_format=torch.channels_last).requires_grad_(True)
            optimizer = torch.optim.Adam([x], lr=schedule.lr, weight_decay=WEIGHT_DECAY)
            for _ in range(schedule.opt_steps):
                optimizer.zero_grad()
                net(x)
                loss = -_filter_mean(capture)
                loss.backward()
                optimizer.step()
            per_scale.append(-loss.detach())
            img = denormalize(x.detach()[0])
        img = img.clamp(0, 1)
        with torch.no_grad():
            net(normalize(img)[None])
            final = _filter_mean(capture).detach()
    return Visualization(
        image=img.cpu(),
        activation_start=start.item(),
        activation_final=final.item(),
        activation_per_scale=[a.item() for a in per_scale],
    )
