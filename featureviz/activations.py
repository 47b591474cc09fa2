"""Per-channel mean activations of one layer for an image, as the article's plots."""
import torch

from .hooks import LayerOutput
from .image import normalize
from .network import device_of, truncated


@torch.no_grad()
def channel_means(features, layer: int, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) images in [0, 1] -> (N, C) mean activation of each channel of `features[layer]`."""
    device = device_of(features)
    with LayerOutput(features[layer]) as capture:
        x = normalize(images.to(device)).contiguous(memory_format=torch.channels_last)
        truncated(features, layer)(x)
        return capture.output.mean(dim=(2, 3)).float().cpu()


def top_channels(means: torch.Tensor, k: int = 10):
    """The k channels with the highest mean, highest first."""
    values, indices = means.topk(min(k, means.numel()))
    return [{"channel": int(i), "mean": float(v)} for v, i in zip(values, indices)]
