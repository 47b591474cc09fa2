"""lucid's and lucent's `fft_image`: each colour channel's 2D real FFT coefficients, scaled by
1/frequency^decay so that low frequencies move first, then an inverse FFT; colours decorrelated
and squashed to (0, 1) (param.color). One scale, at one side.

The optimized parameter is the unscaled spectrum, real and imaginary parts in a last axis of 2,
drawn from N(0, sd^2) by the request's seed; `n` images drawn together (lucent's batch, for
diversity) share one parameter tensor."""
import numpy as np
import torch

from ...pictures import tiled
from . import Stage
from .color import to_valid_rgb

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


class SpectrumImage:
    """`n` images of side `size` from `seed`'s spectra, optimized `steps` times at `lr`;
    `to_network` maps the (n, 3, size, size) images to the network's input for measuring
    (transforms.NetworkInput: what ends the transforms list)."""
    stages = 1

    def __init__(self, n: int, size: int, seed: int, decorrelate: bool, steps: int, lr: float, to_network,
                 device: torch.device):
        self.size, self.decorrelate, self.steps, self.lr, self.to_network = size, decorrelate, steps, lr, to_network
        self.scale = spectrum_scale(size, size).to(device)
        self.spectrum = random_spectrum(n, size, size, seed).to(device).requires_grad_(True)

    def images(self) -> torch.Tensor:
        """(n, 3, size, size) in (0, 1)."""
        return to_valid_rgb(spectrum_image(self.spectrum, self.size, self.size, self.scale), self.decorrelate)

    def stage(self, index: int) -> Stage:
        return Stage(self.size, [self.spectrum], self.images, self.steps, self.lr)

    def end_stage(self, stage: Stage) -> None:
        pass

    def finish(self) -> None:
        pass

    @torch.no_grad()
    def picture(self) -> torch.Tensor:
        return tiled(self.images().detach())

    def measure_input(self) -> torch.Tensor:
        return self.to_network(self.images())
