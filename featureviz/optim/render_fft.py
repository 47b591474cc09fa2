"""Activation maximization as lucent's render_vis draws it: one image side, its spectrum
optimized (featureviz.optim.param_fft), colours decorrelated and squashed to [0, 1]
(featureviz.optim.color), a random transform at every step (featureviz.optim.random_transforms),
then ImageNet normalization and a bilinear upsample to 224 px when the image is smaller.

Unlike lucent it runs only the layers up to the target (of the last ones only the channel,
featureviz.model.lean), and draws every random number from the request's seed. With `diversity`
n > 1 it optimizes n images of the channel together, less the Gram similarity of the layer's
activations times `diversity_weight` (featureviz.optim.diversity)."""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..gradients import gradients
from ..model.lean import single_channel
from ..model.network import device_of, normalize, truncated
from .color import to_valid_rgb
from .diversity import gram_similarity
from .objective_kinds import channel_objective
from .param_fft import random_spectrum, spectrum_image, spectrum_scale
from .random_transforms import StandardTransforms, no_transforms
from .render import Visualization

NETWORK_SIDE = 224  # lucent upsamples smaller images to this before the network


@dataclass(frozen=True)
class Drawing:
    """How an image is drawn: lucent's render_vis defaults, and its objectives' options."""
    size: int = 128
    opt_steps: int = 512
    lr: float = 0.05
    decorrelate: bool = True
    transforms: str = "standard"  # or "none"
    objective: str = "channel"  # or "neuron"
    x: int | None = None
    y: int | None = None
    negative: bool = False
    diversity: int = 1
    diversity_weight: float = 100.0
    network_side: int = NETWORK_SIDE  # smaller images are upsampled to this (tests use less)


def network_side(size: int, upsampled_to: int = NETWORK_SIDE) -> int:
    """The side the network sees, before random transforms: `upsampled_to` when the image is smaller."""
    return max(size, upsampled_to)


def to_network(image: torch.Tensor, size: int, upsampled_to: int = NETWORK_SIDE) -> torch.Tensor:
    """[0, 1] images -> the network's input: normalized, then upsampled if the image was smaller."""
    x = normalize(image)
    if size < upsampled_to:
        x = F.interpolate(x, size=(upsampled_to, upsampled_to), mode="bilinear", align_corners=True)
    return x.contiguous(memory_format=torch.channels_last)


def fft_rgb(spectrum: torch.Tensor, size: int, decorrelate: bool, scale: torch.Tensor) -> torch.Tensor:
    """(n, 3, size, size) images in (0, 1) of spectra."""
    return to_valid_rgb(spectrum_image(spectrum, size, size, scale), decorrelate)


def draw(features, layer: int, filter: int, drawing: Drawing = Drawing(), seed: int = 0) -> Visualization:
    """The image (diversity > 1: its images, tiled) that raises `drawing.objective` of `filter` at
    `features[layer]`."""
    d, device = drawing, device_of(features)
    if d.diversity > 1:
        channel_of = truncated(features, layer)  # the Gram matrices need every channel
        pick = slice(filter, filter + 1)
    else:
        channel_of, pick = single_channel(features, layer, filter), slice(0, 1)
    scale = spectrum_scale(d.size, d.size).to(device)
    spectrum = random_spectrum(d.diversity, d.size, d.size, seed).to(device).requires_grad_(True)
    transform = StandardTransforms(seed) if d.transforms == "standard" else no_transforms
    optimizer = torch.optim.Adam([spectrum], lr=d.lr)

    def value(image, transformed):
        out = channel_of(to_network(transform(image) if transformed else image, d.size, d.network_side))
        values = channel_objective(out[:, pick], d.objective, d.x, d.y, d.negative)
        return values, out

    with gradients():
        with torch.no_grad():
            start = value(fft_rgb(spectrum, d.size, d.decorrelate, scale), False)[0].mean()
        for _ in range(d.opt_steps):
            optimizer.zero_grad()
            values, out = value(fft_rgb(spectrum, d.size, d.decorrelate, scale), True)
            loss = -values.mean()
            if d.diversity > 1:
                loss = loss + d.diversity_weight * gram_similarity(out)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            images = fft_rgb(spectrum, d.size, d.decorrelate, scale)
            final = value(images, False)[0].mean()
    return Visualization(image=tile(images.detach()).cpu(), activation_start=start.item(),
                         activation_final=final.item(), activation_per_scale=[final.item()])


GAP = 4  # white pixels between the images of a diversity grid


def tile(images: torch.Tensor) -> torch.Tensor:
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
