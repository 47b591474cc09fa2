"""From an unbounded image to valid RGB (lucid's `to_valid_rgb`): optionally map decorrelated
colour channels to RGB through the square root of ImageNet's colour covariance, then a sigmoid."""
import torch

# sqrt of ImageNet's RGB covariance, from its eigendecomposition (lucid's color_correlation_svd_sqrt)
COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]])
# ... scaled so that its largest column has unit norm
COLOR_CORRELATION = COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()


def decorrelated_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(n, 3, h, w) in decorrelated colour -> RGB: each pixel's vector times the matrix's transpose."""
    matrix = COLOR_CORRELATION.to(image.device, image.dtype)
    return torch.einsum("nchw,dc->ndhw", image, matrix)


def to_valid_rgb(image: torch.Tensor, decorrelate: bool) -> torch.Tensor:
    """(n, 3, h, w) unbounded -> (n, 3, h, w) in (0, 1)."""
    return torch.sigmoid(decorrelated_to_rgb(image) if decorrelate else image)
