"""Per-channel mean activations of one layer for an image, as the article's plots."""
import torch

from ..model.network import device_of, normalize, truncated
from ..optim import precision as arithmetic


@torch.no_grad()
def channel_means(features, layer: int, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) images in [0, 1] -> (N, C) mean activation of each channel of `features[layer]`,
    in strict fp32 (no TF32 on a GPU)."""
    device = device_of(features)
    with arithmetic.kernels("fp32", device):
        x = normalize(images.to(device)).contiguous(memory_format=torch.channels_last)
        return truncated(features, layer)(x).mean(dim=(2, 3)).float().cpu()


def top_channels(means: torch.Tensor, k: int = 10):
    """The k channels with the highest mean, highest first."""
    values, indices = means.topk(min(k, means.numel()))
    return [{"channel": int(i), "mean": float(v)} for v, i in zip(values, indices)]
