"""Activation maximization by the article's multi-scale method.

Per scale: a fresh leaf tensor from the image and a fresh Adam, `opt_steps` steps of
-mean(activation of the filter), denormalize, bicubic upscale by `upscaling_factor`, box blur.
The image of the last scale, clipped to [0, 1], is the result.

Several images of one layer and schedule (their own filters and seeds) can be optimized together:
at each scale where featureviz.batching finds that a batch gives every image exactly the gradient
it has alone, the layers below the last convolution run once for all of them; at the other scales
they run one after another. Each image is the one it would be alone, bit for bit.
"""
import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from . import precision as arithmetic
from .batching import batch_is_exact
from .hooks import LayerOutput
from .image import box_blur, denormalize, normalize, start_noise, upscale
from .network import channel_tail, channel_trunk, device_of

WEIGHT_DECAY = 1e-6
GRAPH_WARMUP_STEPS = 2  # eager steps before a scale's graph is captured (they count as steps)


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
    batched_sides: list = field(default_factory=list)  # sides optimized in one batch with other images


class FilterObjective:
    """Each image's mean activation of its own filter at `layer`, read by a hook on the filter's
    network (network.single_channel: its trunk, shared by all filters, then the filter's tail).

    Only what the target needs runs: the layers up to it, and of the last ones only the channel."""

    def __init__(self, features: nn.Sequential, layer: int, filters: list[int]):
        self.trunk = nn.Sequential(*channel_trunk(features, layer))
        self.tails = [nn.Sequential(*channel_tail(features, layer, f)) for f in filters]
        self.captures = []
        self._hooks = contextlib.ExitStack()

    def __enter__(self):
        self.captures = [self._hooks.enter_context(LayerOutput(tail[-1])) for tail in self.tails]
        return self

    def __exit__(self, *exc):
        self._hooks.close()
        self.captures = []
        return False

    def __call__(self, xs: list, which: list[int]) -> torch.Tensor:
        """xs: (1, 3, H, W) normalized images of the filters `which` -> their mean activations."""
        below = self.trunk(xs[0] if len(xs) == 1 else torch.cat(xs))
        for i, part in zip(which, below.split(1)):
            self.tails[i](part)
        return torch.stack([self.captures[i].output[0, 0].mean().float() for i in which])


@torch.no_grad()
def _measure(objective, img, i):
    with arithmetic.kernels("fp32", img.device):
        return objective([normalize(img)[None]], [i])[0]


def _step(objective, xs, which, optimizers, precision):
    """One Adam step on the pixels `xs`; returns their filters' mean activations."""
    with arithmetic.autocast(precision, xs[0].device):
        activations = objective(xs, which)
        loss = -activations.sum()  # each image's gradient is that of its own -activation
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()
    return activations


def _optimize(objective, xs, which, schedule, precision, first_graph):
    # One Adam per image, as alone: same state, same tensor shapes, so the same arithmetic.
    optimizers = [torch.optim.Adam([x], lr=schedule.lr, weight_decay=WEIGHT_DECAY) for x in xs]
    for _ in range(schedule.opt_steps):
        for optimizer in optimizers:
            optimizer.zero_grad()
        activations = _step(objective, xs, which, optimizers, precision)
    return activations.detach()  # first_graph: only the graphed loop needs it


def _optimize_graphed(objective, xs, which, schedule, precision, first_graph):
    """_optimize with the steps after the first ones replaying a CUDA graph of one step.

    A step on a small image is a few hundred tiny kernels: launching them from Python costs
    more than running them. Capturable Adam keeps its step count on the GPU, so the graph
    holds the whole step and the loop has no host sync."""
    optimizers = [torch.optim.Adam([x], lr=schedule.lr, weight_decay=WEIGHT_DECAY, capturable=True)
                  for x in xs]
    device = xs[0].device
    main, side = torch.cuda.current_stream(device), torch.cuda.Stream(device)
    side.wait_stream(main)
    with torch.cuda.stream(side):  # warm-up and capture must not run on the default stream
        for _ in range(min(GRAPH_WARMUP_STEPS, schedule.opt_steps)):
            for optimizer in optimizers:
                optimizer.zero_grad()
            activations = _step(objective, xs, which, optimizers, precision)
        if schedule.opt_steps > GRAPH_WARMUP_STEPS:
            for optimizer in optimizers:
                optimizer.zero_grad()  # to None: the captured backward writes x.grad, not adds to it
            graph = torch.cuda.CUDAGraph()
            # The graphs of one call share the memory pool of its first graph, which is kept
            # alive until the call ends; the other graphs are dropped once replayed.
            pool = first_graph[0].pool() if first_graph else None
            graph.capture_begin(pool, capture_error_mode="thread_local")
            try:
                activations = _step(objective, xs, which, optimizers, precision)
            finally:
                graph.capture_end()
            for _ in range(schedule.opt_steps - GRAPH_WARMUP_STEPS):
                graph.replay()
            if not first_graph:
                first_graph.append(graph)
    main.wait_stream(side)
    activations = activations.detach().clone()
    for x in xs:
        x.grad = None  # the last tensors from the graph's memory that would outlive it
    return activations


def visualize_many(features, layer: int, filters: list[int], seeds: list[int], schedule: Schedule = Schedule(),
                   precision: str = "fp32", cuda_graphs: bool = True) -> list[Visualization]:
    """visualize for each (filter, seed) pair, optimized together where that changes no image."""
    arithmetic.check(precision)
    if len(filters) != len(seeds) or not filters:
        raise ValueError("one seed per filter, and at least one filter")
    device, n = device_of(features), len(filters)
    optimize = _optimize_graphed if device.type == "cuda" and cuda_graphs else _optimize
    per_scale, batched_sides, first_graph = [[] for _ in range(n)], [], []
    with FilterObjective(features, layer, filters) as objective, arithmetic.kernels(precision, device):
        imgs = [start_noise(schedule.size, seed).to(device) for seed in seeds]
        starts = [_measure(objective, img, i) for i, img in enumerate(imgs)]
        for scale, side in enumerate(schedule.sides()):
            if scale > 0:
                imgs = [upscale(img, side) for img in imgs]
                if schedule.blur is not None:
                    imgs = [box_blur(img, schedule.blur) for img in imgs]
            xs = [normalize(img)[None].contiguous(memory_format=torch.channels_last).requires_grad_(True)
                  for img in imgs]
            together = n > 1 and batch_is_exact(objective.trunk, n, side, device, precision)
            for which in [list(range(n))] if together else [[i] for i in range(n)]:
                activations = optimize(objective, [xs[i] for i in which], which, schedule, precision, first_graph)
                for i, activation in zip(which, activations):
                    per_scale[i].append(activation)
            if together:
                batched_sides.append(side)
            imgs = [denormalize(x.detach()[0]) for x in xs]
        imgs = [img.clamp(0, 1) for img in imgs]
        finals = [_measure(objective, img, i) for i, img in enumerate(imgs)]
    if first_graph:
        # A dropped graph's memory pool stays reserved, and unusable by anything else, until the
        # cache is emptied: without this each layer-40 request kept another 3.4 GB (an H100 ran
        # out after about 20 requests).
        first_graph.clear()
        torch.cuda.empty_cache()
    return [Visualization(image=img.cpu(), activation_start=start.item(), activation_final=final.item(),
                          activation_per_scale=[a.item() for a in scales], batched_sides=list(batched_sides))
            for img, start, final, scales in zip(imgs, starts, finals, per_scale)]


def visualize(features, layer: int, filter: int, schedule: Schedule = Schedule(), seed: int = 0,
              precision: str = "fp32", cuda_graphs: bool = True) -> Visualization:
    """Optimize an image that maximizes the mean activation of `filter` at `features[layer]`.

    `precision` is the optimization's arithmetic (featureviz.precision); the activations it
    reports are measured in fp32 whatever it is. On CUDA the Adam steps of each scale replay a
    CUDA graph unless `cuda_graphs` is False."""
    return visualize_many(features, layer, [filter], [seed], schedule, precision, cuda_graphs)[0]
