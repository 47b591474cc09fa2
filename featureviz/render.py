"""Activation maximization by the article's multi-scale method.

Per scale: a fresh leaf tensor from the image and a fresh Adam, `opt_steps` steps of
-mean(activation of the filter), denormalize, bicubic upscale by `upscaling_factor`, box blur.
The image of the last scale, clipped to [0, 1], is the result.
"""
from dataclasses import dataclass, field

import torch

from . import precision as arithmetic
from .hooks import LayerOutput
from .image import box_blur, denormalize, normalize, start_noise, upscale
from .network import device_of, single_channel

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


def _filter_mean(capture):
    return capture.output[0, 0].mean()  # the network below computes only the filter's channel


@torch.no_grad()
def _measure(net, capture, img):
    with arithmetic.kernels("fp32", img.device):
        net(normalize(img)[None])
        return _filter_mean(capture).detach()


def _step(net, capture, x, optimizer, precision):
    """One Adam step on the pixels `x`; returns the loss, -mean activation of the filter."""
    with arithmetic.autocast(precision, x.device):
        net(x)
        loss = -_filter_mean(capture).float()
    loss.backward()
    optimizer.step()
    return loss


def _optimize(net, capture, x, schedule, precision):
    optimizer = torch.optim.Adam([x], lr=schedule.lr, weight_decay=WEIGHT_DECAY)
    for _ in range(schedule.opt_steps):
        optimizer.zero_grad()
        loss = _step(net, capture, x, optimizer, precision)
    return loss.detach()


def _optimize_graphed(net, capture, x, schedule, precision, first_graph):
    """_optimize with the steps after the first ones replaying a CUDA graph of one step.

    A step on a small image is a few hundred tiny kernels: launching them from Python costs
    more than running them. Capturable Adam keeps its step count on the GPU, so the graph
    holds the whole step and the loop has no host sync."""
    optimizer = torch.optim.Adam([x], lr=schedule.lr, weight_decay=WEIGHT_DECAY, capturable=True)
    main, side = torch.cuda.current_stream(x.device), torch.cuda.Stream(x.device)
    side.wait_stream(main)
    with torch.cuda.stream(side):  # warm-up and capture must not run on the default stream
        for _ in range(min(GRAPH_WARMUP_STEPS, schedule.opt_steps)):
            optimizer.zero_grad()
            loss = _step(net, capture, x, optimizer, precision)
        if schedule.opt_steps > GRAPH_WARMUP_STEPS:
            optimizer.zero_grad()  # to None: the captured backward writes x.grad, not adds to it
            graph = torch.cuda.CUDAGraph()
            # The scales of one request share the memory pool of its first graph, which is kept
            # alive until the request ends; the other graphs are dropped once replayed.
            pool = first_graph[0].pool() if first_graph else None
            graph.capture_begin(pool, capture_error_mode="thread_local")
            try:
                loss = _step(net, capture, x, optimizer, precision)
            finally:
                graph.capture_end()
            for _ in range(schedule.opt_steps - GRAPH_WARMUP_STEPS):
                graph.replay()
            if not first_graph:
                first_graph.append(graph)
    main.wait_stream(side)
    loss = loss.detach().clone()
    x.grad = None  # the last tensor from the graph's memory that would outlive it
    return loss


def visualize(features, layer: int, filter: int, schedule: Schedule = Schedule(), seed: int = 0,
              precision: str = "fp32", cuda_graphs: bool = True):
    """Optimize an image that maximizes the mean activation of `filter` at `features[layer]`.

    `precision` is the optimization's arithmetic (featureviz.precision); the activations it
    reports are measured in fp32 whatever it is. On CUDA the Adam steps of each scale replay a
    CUDA graph unless `cuda_graphs` is False."""
    arithmetic.check(precision)
    device = device_of(features)
    # Only what the target needs: the layers up to it, and of the last ones only the filter's channel.
    net = single_channel(features, layer, filter)
    per_scale, first_graph = [], []
    with LayerOutput(net[-1]) as capture, arithmetic.kernels(precision, device):
        img = start_noise(schedule.size, seed).to(device)
        start = _measure(net, capture, img)
        for scale, side in enumerate(schedule.sides()):
            if scale > 0:
                img = upscale(img, side)
                if schedule.blur is not None:
                    img = box_blur(img, schedule.blur)
            x = normalize(img)[None].contiguous(memory_format=torch.channels_last).requires_grad_(True)
            if device.type == "cuda" and cuda_graphs:
                per_scale.append(-_optimize_graphed(net, capture, x, schedule, precision, first_graph))
            else:
                per_scale.append(-_optimize(net, capture, x, schedule, precision))
            img = denormalize(x.detach()[0])
        img = img.clamp(0, 1)
        final = _measure(net, capture, img)
    if first_graph:
        # A dropped graph's memory pool stays reserved, and unusable by anything else, until the
        # cache is emptied: without this each layer-40 request kept another 3.4 GB (an H100 ran
        # out after about 20 requests).
        first_graph.clear()
        torch.cuda.empty_cache()
    return Visualization(
        image=img.cpu(),
        activation_start=start.item(),
        activation_final=final.item(),
        activation_per_scale=[a.item() for a in per_scale],
    )
