"""From an unbounded image to valid RGB (lucid's `to_valid_rgb`): optionally map decorrelated
colour channels to RGB through the square root of ImageNet's colour covariance, then a sigmoid."""
import functools

import torch

# sqrt of ImageNet's RGB covariance, from its eigendecomposition (lucid's color_correlation_svd_sqrt)
COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]])
# ... scaled so that its largest column has unit norm
COLOR_CORRELATION = COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()


@functools.lru_cache(maxsize=8)
def _color_correlation(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """COLOR_CORRELATION on a device, copied there once: a render's every step uses it."""
    return COLOR_CORRELATION.to(device, dtype)


def decorrelated_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(n, 3, h, w) in decorrelated colour -> RGB: each pixel's vector times the matrix's transpose."""
    return torch.einsum("nchw,dc->ndhw", image, _color_correlation(image.device, image.dtype))


def to_valid_rgb(image: torch.Tensor, decorrelate: bool) -> torch.Tensor:
    """(n, 3, h, w) unbounded -> (n, 3, h, w) in (0, 1)."""
    return torch.sigmoid(decorrelated_to_rgb(image) if decorrelate else image)
