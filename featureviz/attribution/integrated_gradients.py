"""Integrated Gradients (Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks",
ICML 2017), by captum's `IntegratedGradients`: each pixel's attribution is (input - baseline)
times the mean gradient of the target's score along the straight path from the baseline to the
input, here a black image, the path integral approximated by captum's Gauss-Legendre rule in
`steps` points. The attributions of a pixel's colours sum, over the image, to the score's rise
from the baseline (captum reports how far from it as the convergence delta).

TorchServe's captum examples serve it on /explanations; so do we, as saliency's
`method: integrated_gradients`."""
import torch

from ..gradients import gradients

DEFAULT_STEPS = 50
MAX_STEPS = 200
INTERNAL_BATCH = 16  # path points per forward pass, to bound memory at 224 px


def integrated_gradients(net, images: torch.Tensor, targets: list[int], steps: int = DEFAULT_STEPS) -> torch.Tensor:
    """(N, 3, H, W) attributions of [0, 1] pixels to each image's target score, from black."""
    from captum.attr import IntegratedGradients  # where it runs, as attribution.maps imports captum
    with gradients():
        inputs = images.detach().clone()
        return IntegratedGradients(net).attribute(inputs, baselines=torch.zeros_like(inputs), target=targets,
                                                  n_steps=steps, internal_batch_size=INTERNAL_BATCH).detach()
