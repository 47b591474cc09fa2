"""What the article does to the image between scales: a bicubic upscale, then a box blur."""
import torch
import torch.nn.functional as F


def upscale(img: torch.Tensor, side: int) -> torch.Tensor:
    """Bicubic resize of a (3, H, W) image to (3, side, side), as cv2.INTER_CUBIC."""
    return F.interpolate(img[None], size=(side, side), mode="bicubic", align_corners=False)[0]


def box_blur(img: torch.Tensor, k: int) -> torch.Tensor:
    """k x k mean filter with reflected borders, as cv2.blur (BORDER_REFLECT_101)."""
    if k <= 1:
        return img
    before, after = k // 2, k - 1 - k // 2
    padded = F.pad(img[None], (before, after, before, after), mode="reflect")
    kernel = torch.full((3, 1, k, k), 1.0 / (k * k), dtype=img.dtype, device=img.device)
    return F.conv2d(padded, kernel, groups=3)[0]
