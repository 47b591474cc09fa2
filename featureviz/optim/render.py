"""Activation maximization, as lucent's render_vis: a parameterization (featureviz.optim.param),
the transforms of every step (featureviz.optim.transforms), and an objective
(featureviz.optim.objectives), in one loop.

Stage by stage (the article's scales; lucent's one): a fresh Adam on the stage's tensors, steps
that raise the objective of the transformed image, then the parameterization's own step to the
next stage. The picture of the last stage is the result, with its terms measured in fp32.

Several renders of one network readout and one schedule can be optimized together: at each stage
where `batch_when` (by default featureviz.optim.batching's probe) finds that a batch gives every
image exactly the gradient it has alone, the network runs once for all of them; at the other
stages they run one after another. Each image is the one it would be alone, bit for bit. Renders
with random transforms run alone (their images change shape from step to step).
"""
import contextlib
from dataclasses import dataclass, field

import torch

from ..gradients import gradients
from ..model.network import device_of
from . import precision as arithmetic
from .batching import batch_is_exact
from .cuda_graphs import GraphPool, optimize_graphed
from .objectives import Objective
from .param import Param
from .readout import readout
from .steps import optimize


@dataclass
class Render:
    """One image to optimize (or lucent's batch of images drawn together)."""
    param: Param
    objective: Objective
    transforms: list = field(default_factory=list)


@dataclass
class Visualization:
    image: torch.Tensor  # (3, H, W) in [0, 1], on the CPU
    start: list  # each term's value for the start image, in fp32
    final: list  # ... and for the returned image
    per_stage: list = field(default_factory=list)  # each stage's terms at its end
    batched_sides: list = field(default_factory=list)  # sides optimized in one batch with other images

    @property
    def activation_start(self) -> float:
        """The first term's value: a single channel's mean activation (or its neuron's)."""
        return self.start[0]

    @property
    def activation_final(self) -> float:
        return self.final[0]

    @property
    def activation_per_scale(self) -> list:
        return [values[0] for values in self.per_stage]


@torch.no_grad()
def measure(network, renders: list[Render], batch_when) -> list[torch.Tensor]:
    """Each render's terms for its picture as it stands, without random transforms, in fp32. On a
    GPU, channels_last, and in one batch where `batch_when` finds that this changes no value."""
    inputs = [r.param.measure_input() for r in renders]
    device = inputs[0].device
    with arithmetic.kernels("fp32", device):
        if device.type == "cuda":
            inputs = [x.contiguous(memory_format=torch.channels_last) for x in inputs]
            if len(inputs) > 1 and len({x.shape for x in inputs}) == 1 and \
                    batch_when(network.shared, len(inputs), inputs[0].shape[-1], device, "fp32"):
                return [r.objective(found)[1] for r, found in zip(renders, network(inputs))]
        return [r.objective(network([x])[0])[1] for r, x in zip(renders, inputs)]


def render(features, renders: list[Render], precision: str = "fp32", cuda_graphs: bool = True,
           batch_when=batch_is_exact, on_stage=None, pool_kernel: bool = True) -> list[Visualization]:
    """Each render's Visualization, optimized together where `batch_when(network, n, side, device,
    precision)` says so (by default: where that changes no image). Autograd is on even under the
    caller's no_grad or inference_mode; the renders' tensors must be made with it on too
    (featureviz.gradients).

    `precision` is the optimization's arithmetic (featureviz.optim.precision); the terms reported
    are measured in fp32 whatever it is. On CUDA the steps of each stage replay a CUDA graph unless
    `cuda_graphs` is False or a render has random transforms. `on_stage(stage, side, values,
    pictures)`, if given, is called after each stage (counted from 0) with each render's terms and
    its picture in [0, 1]: the terms at its last step, or measured on the picture where random
    transforms changed what that step saw. `pool_kernel`: the CPU's max-pool + ReLU kernel where
    it applies (featureviz.model.pool_relu)."""
    arithmetic.check(precision)
    if not renders or len({r.param.stages for r in renders}) != 1:
        raise ValueError("at least one render, all with the same number of stages")
    device, n = device_of(features), len(renders)
    transformed = any(r.transforms for r in renders)
    graphs = GraphPool() if device.type == "cuda" and cuda_graphs and not transformed else None
    network = readout(features, [r.objective for r in renders], pool_kernel)
    per_stage, batched_sides = [[] for _ in renders], []
    with gradients(), arithmetic.kernels(precision, device), graphs or contextlib.nullcontext():
        starts = measure(network, renders, batch_when)
        for index in range(renders[0].param.stages):
            stages = [r.param.stage(index) for r in renders]
            side = stages[0].side
            together = n > 1 and not transformed and batch_when(network.shared, n, side, device, precision)
            for which in [list(range(n))] if together else [[i] for i in range(n)]:
                batch = [(renders[i], stages[i]) for i in which]
                values = optimize_graphed(network, batch, precision, graphs) if graphs else \
                    optimize(network, batch, precision)
                for i, value in zip(which, values):
                    per_stage[i].append(value)
            for r, stage in zip(renders, stages):
                r.param.end_stage(stage)
            for i, r in enumerate(renders):
                if r.transforms:
                    per_stage[i][-1] = measure(network, [r], batch_when)[0]
            if together:
                batched_sides.append(side)
            if on_stage is not None:
                on_stage(index, side, [values[-1].tolist() for values in per_stage], [r.param.picture() for r in renders])
        for r in renders:
            r.param.finish()
        finals = measure(network, renders, batch_when)
    return [Visualization(r.param.picture().cpu(), start.tolist(), final.tolist(),
                          [values.tolist() for values in stages], list(batched_sides))
            for r, start, final, stages in zip(renders, starts, finals, per_stage)]
