"""Where the model looked: saliency, Grad-CAM and occlusion, for a classifier_net on [0, 1] pixels.

Saliency and Grad-CAM use captum (imported where they run: a worker that only visualizes needs
neither captum nor the matplotlib it imports); occlusion is a plain batched loop, because its map
is one probability per window position (the ZFNet figure), not captum's per-pixel attribution.
"""
import warnings

import torch

from ..gradients import gradients

SALIENCY_METHODS = ("vanilla", "guided", "deconv")
OCCLUSION_GRAY = 0.5
OCCLUSION_BATCH_PIXELS = 16 * 224 * 224  # occluded copies per forward pass: 16 at 224 px


@torch.no_grad()
def probabilities(net, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) pixels -> (N, classes) softmax probabilities."""
    return net(images).softmax(dim=1)


def saliency(net, images: torch.Tensor, targets: list[int], method: str = "vanilla") -> torch.Tensor:
    """(N, H, W): max over colour channels of |d score[target] / d pixel|.

    `guided` is guided backprop, `deconv` backpropagates ReLU of the signal through ReLUs
    (keras-vis's `relu` modifier); both override the gradient of every ReLU of `net`."""
    from captum.attr import Deconvolution, GuidedBackprop, Saliency
    with gradients(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        inputs = images.detach().clone().requires_grad_()
        if method == "vanilla":
            grads = Saliency(net).attribute(inputs, target=targets, abs=True)
        elif method == "guided":
            grads = GuidedBackprop(net).attribute(inputs, target=targets).abs()
        elif method == "deconv":
            grads = Deconvolution(net).attribute(inputs, target=targets).abs()
        else:
            raise ValueError(f"unknown saliency method {method!r}")
    return grads.amax(dim=1).detach()


def gradcam(net, images: torch.Tensor, targets: list[int], layer: int) -> torch.Tensor:
    """(N, h, w) Grad-CAM at net.features[layer]: ReLU of the activations weighted by the spatial
    mean of the target score's gradients."""
    from captum.attr import LayerGradCam
    with gradients():
        cam = LayerGradCam(net, net.features[layer]).attribute(images, target=targets, relu_attributions=True)
    return cam[:, 0].detach()


def occlusion_positions(side: int, window: int, stride: int) -> list[int]:
    """Top-left offsets of the square along one axis: it stays wholly inside the image."""
    return list(range(0, side - window + 1, stride))


@torch.no_grad()
def occlusion(net, image: torch.Tensor, target: int, window: int, stride: int) -> torch.Tensor:
    """(n, n): the target's probability with a gray square of `window` px at (i*stride, j*stride)."""
    side = image.shape[-1]
    offsets = occlusion_positions(side, window, stride)
    corners = [(y, x) for y in offsets for x in offsets]
    per_pass = max(1, OCCLUSION_BATCH_PIXELS // (side * side))
    found = []
    for start in range(0, len(corners), per_pass):
        chunk = corners[start:start + per_pass]
        batch = image.expand(len(chunk), *image.shape).clone()
        for k, (y, x) in enumerate(chunk):
            batch[k, :, y:y + window, x:x + window] = OCCLUSION_GRAY
        found.append(probabilities(net, batch)[:, target])
    return torch.cat(found).view(len(offsets), len(offsets)).cpu()
