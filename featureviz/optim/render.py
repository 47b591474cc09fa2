"""Activation maximization by the article's multi-scale method.

Per scale: a fresh leaf tensor from the image and a fresh Adam, `opt_steps` steps that raise the
objective, denormalize, bicubic upscale by `upscaling_factor`, box blur. The image of the last
scale, clipped to [0, 1], is the result.

Several images of one layer and schedule (their own filters and seeds) can be optimized together:
at each scale where `batch_when` (by default featureviz.optim.batching's probe) finds that a batch
gives every image exactly the gradient it has alone, the objective runs once for all of them; at
the other scales they run one after another. Each image is the one it would be alone, bit for bit.
"""
import contextlib
from dataclasses import dataclass, field

import torch

from ..model.network import denormalize, device_of, normalize
from . import precision as arithmetic
from .batching import batch_is_exact
from .cuda_graphs import GraphPool, optimize_graphed
from .objectives import FilterObjective
from .param import Schedule, start_noise
from .steps import optimize
from .transform import box_blur, upscale


@dataclass
class Visualization:
    image: torch.Tensor  # (3, H, W) in [0, 1], on the CPU
    activation_start: float  # mean activation of the filter for the noise start
    activation_final: float  # ... and for the returned image
    activation_per_scale: list = field(default_factory=list)  # at the last step of each scale
    batched_sides: list = field(default_factory=list)  # sides optimized in one batch with other images


@torch.no_grad()
def _measure(objective, img, i):
    with arithmetic.kernels("fp32", img.device):
        return objective([normalize(img)[None]], [i])[0]


def visualize_many(features, layer: int, filters: list[int], seeds: list[int], schedule: Schedule = Schedule(),
                   precision: str = "fp32", cuda_graphs: bool = True, batch_when=batch_is_exact,
                   on_scale=None, objective_of=FilterObjective) -> list[Visualization]:
    """visualize for each (filter, seed) pair, optimized together where `batch_when(network, n, side,
    device, precision)` says so (by default: where that changes no image).

    `on_scale(scale, side, activations, images)`, if given, is called after each scale (counted
    from 0) with each image's activation at its last step and its image in [0, 1].
    `objective_of(features, layer, filters)` builds what is raised (FilterObjective's call)."""
    arithmetic.check(precision)
    if len(filters) != len(seeds) or not filters:
        raise ValueError("one seed per filter, and at least one filter")
    device, n = device_of(features), len(filters)
    graphs = GraphPool() if device.type == "cuda" and cuda_graphs else None
    per_scale, batched_sides = [[] for _ in range(n)], []
    objective = objective_of(features, layer, filters)
    with arithmetic.kernels(precision, device), graphs or contextlib.nullcontext():
        imgs = [start_noise(schedule.size, seed).to(device) for seed in seeds]
        starts = [_measure(objective, img, i) for i, img in enumerate(imgs)]
        for scale, side in enumerate(schedule.sides()):
            if scale > 0:
                imgs = [upscale(img, side) for img in imgs]
                if schedule.blur is not None:
                    imgs = [box_blur(img, schedule.blur) for img in imgs]
            xs = [normalize(img)[None].contiguous(memory_format=torch.channels_last).requires_grad_(True)
                  for img in imgs]
            together = n > 1 and batch_when(objective.trunk, n, side, device, precision)
            for which in [list(range(n))] if together else [[i] for i in range(n)]:
                group = [xs[i] for i in which]
                if graphs:
                    values = optimize_graphed(objective, group, which, schedule, precision, graphs)
                else:
                    values = optimize(objective, group, which, schedule, precision)
                for i, value in zip(which, values):
                    per_scale[i].append(value)
            if together:
                batched_sides.append(side)
            imgs = [denormalize(x.detach()[0]) for x in xs]
            if on_scale is not None:
                on_scale(scale, side, [float(values[-1]) for values in per_scale], imgs)
        imgs = [img.clamp(0, 1) for img in imgs]
        finals = [_measure(objective, img, i) for i, img in enumerate(imgs)]
    return [Visualization(image=img.cpu(), activation_start=start.item(), activation_final=final.item(),
                          activation_per_scale=[a.item() for a in scales], batched_sides=list(batched_sides))
            for img, start, final, scales in zip(imgs, starts, finals, per_scale)]


def visualize(features, layer: int, filter: int, schedule: Schedule = Schedule(), seed: int = 0,
              precision: str = "fp32", cuda_graphs: bool = True, objective_of=FilterObjective) -> Visualization:
    """Optimize an image that maximizes the mean activation of `filter` at `features[layer]`.

    `precision` is the optimization's arithmetic (featureviz.optim.precision); the activations it
    reports are measured in fp32 whatever it is. On CUDA the Adam steps of each scale replay a
    CUDA graph unless `cuda_graphs` is False. `objective_of` as in visualize_many."""
    return visualize_many(features, layer, [filter], [seed], schedule, precision, cuda_graphs,
                          objective_of=objective_of)[0]
