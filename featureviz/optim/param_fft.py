"""The image as a spectrum (lucid's and lucent's `fft_image`): each colour channel's 2D real FFT
coefficients, scaled by 1/frequency^decay so that low frequencies move first, then an inverse FFT.

The optimized parameter is the unscaled spectrum, real and imaginary parts in a last axis of 2,
drawn from N(0, sd^2). Its image is not yet in [0, 1]: featureviz.optim.color makes it so."""
import numpy as np
import torch

SD = 0.01
DECAY = 1.0
SOFTEN = 4.0  # lucid divides the inverse FFT by this; a smaller image range saturates less


def frequencies(h: int, w: int) -> np.ndarray:
    """(h, w // 2 + 1 + w % 2) radial frequencies of a real 2D FFT of an h x w image; an odd width
    keeps one more column, which the inverse FFT drops, as lucid does."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 1 + w % 2]
    return np.sqrt(fx * fx + fy * fy)


def spectrum_scale(h: int, w: int, decay: float = DECAY) -> torch.Tensor:
    """1 / frequency^decay, the zero frequency counted as 1 / max(h, w)."""
    return torch.tensor(1.0 / np.maximum(frequencies(h, w), 1.0 / max(h, w)) ** decay, dtype=torch.float32)


def random_spectrum(n: int, h: int, w: int, seed: int, sd: float = SD) -> torch.Tensor:
    """(n, 3, fh, fw, 2) start spectra from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, *frequencies(h, w).shape, 2, generator=generator) * sd


def spectrum_image(spectrum: torch.Tensor, h: int, w: int, scale: torch.Tensor) -> torch.Tensor:
    """(n, 3, h, w) image, before colour and sigmoid, of (n, 3, fh, fw, 2) spectra."""
    scaled = torch.view_as_complex((spectrum * scale.to(spectrum.device)[..., None]).contiguous())
    return torch.fft.irfftn(scaled, s=(h, w), norm="ortho")[..., :h, :w] / SOFTEN
