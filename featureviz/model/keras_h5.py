"""Keras' VGG-16 weights (HDF5) as this project's vgg16_bn state_dict.

Keras 2 files (`keras.applications.VGG16`: `block1_conv1`, ... `fc1`, `fc2`, `predictions`, in the
order of the file's `layer_names`) and Keras 3 `.weights.h5` files (`.../conv2d_1/vars/0`, named by
class and position, so read in natural order) both hold HWIO kernels, biases, and, for a model with
its top, the three dense layers. The network trained on Caffe's input (BGR, 0-255, per-channel mean
subtracted); ours takes ImageNet-normalized RGB, so the first convolution absorbs that change. That
is exact wherever the kernel does not reach into the zero padding: the padding stands for another
colour in each convention (at most about one grey level apart).
"""
import re

import torch
from torchvision.models import vgg16_bn

from .geometry import conv_layers
from .network import IMAGENET_MEAN, IMAGENET_STD

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications' caffe preprocessing
VGG16_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
VGG16_DENSE = [(25088, 4096), (4096, 4096), (4096, 1000)]
BN_EPS = 1e-5  # torchvision's BatchNorm2d default


class KerasWeightsError(ValueError):
    pass


def _natural(path: str) -> list:
    # conv2d < conv2d_1 < conv2d_2 < conv2d_10, block2 < block10: the order Keras 3 named them in.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def _keras2_layers(root) -> list:
    """Each layer's weights in the file's own order (`layer_names`, `weight_names`)."""
    out = []
    for name in root.attrs["layer_names"]:
        group = root[name.decode() if isinstance(name, bytes) else name]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])]
        if names:
            out.append((group.name, [group[n][()] for n in names]))
    return out


def _keras3_layers(root) -> list:
    found = []
    root.visititems(lambda path, obj: found.append(path) if path.endswith("/vars") or path == "vars" else None)
    out = []
    for path in sorted(found, key=_natural):
        variables = root[path]
        out.append(("/" + path.rsplit("/vars", 1)[0], [variables[k][()] for k in sorted(variables, key=int)]))
    return out


def read_layers(path: str) -> tuple[str, list]:
    """The file's layout ("keras2" or "keras3") and its weighted layers in network order."""
    import h5py  # only where Keras files are converted, not in the served worker

    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise KerasWeightsError(f"{path} is not an HDF5 file: {error}") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f  # a whole saved model, or its weights
        if "layer_names" in root.attrs:
            return "keras2", _keras2_layers(root)
        return "keras3", _keras3_layers(root)


def _pick(layers: list, ndim: int, shapes: list, what: str, path: str, optional=False) -> list:
    chosen = [(name, w) for name, w in layers if len(w) == 2 and w[0].ndim == ndim and w[0].shape[-1] > 1]
    got = [(w[0].shape[-2], w[0].shape[-1]) for _, w in chosen]
    if optional and not chosen:
        return []
    if got != shapes or (ndim == 4 and any(w[0].shape[:2] != (3, 3) for _, w in chosen)):
        raise KerasWeightsError(f"{path}: its {what} are {got or 'missing'}, not VGG-16's {shapes}")
    return chosen


def first_conv_for_imagenet_input(kernel: torch.Tensor, bias: torch.Tensor, caffe_mean_bgr=CAFFE_MEAN_BGR):
    """An OIHW kernel and bias made for Caffe's input (BGR, 0-255, minus the mean) -> the same
    convolution on ImageNet-normalized RGB: caffe_bgr = 255 * (std * x + mean)[::-1] - caffe_mean."""
    kernel, bias = kernel.double(), bias.double()
    rgb = kernel.flip(1)  # input channel k of ours is channel 2 - k of theirs
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    caffe_mean_rgb = torch.tensor(caffe_mean_bgr, dtype=torch.float64).flip(0).view(1, 3, 1, 1)
    shift = 255 * mean - caffe_mean_rgb  # what the Caffe input is where ours is 0
    return (rgb * 255 * std).float(), (bias + (rgb * shift).sum(dim=(1, 2, 3))).float()


def convert(path: str, caffe_mean_bgr=CAFFE_MEAN_BGR) -> tuple[dict, dict]:
    """A Keras VGG-16 weights file, trained on BGR 0-255 input minus `caffe_mean_bgr` ->
    (vgg16_bn state_dict, what it is: layout and classifier)."""
    layout, layers = read_layers(path)
    convs = _pick(layers, 4, VGG16_CONVS, "3x3 convolutions", path)
    dense = _pick(layers, 2, VGG16_DENSE, "dense layers", path, optional=True)
    network = vgg16_bn(weights=None)
    state = network.state_dict()
    for i, (index, (_, (kernel, bias))) in enumerate(zip(conv_layers(network.features), convs)):
        weight, b = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(), torch.from_numpy(bias)
        if i == 0:
            weight, b = first_conv_for_imagenet_input(weight, b, caffe_mean_bgr)
        state[f"features.{index}.weight"], state[f"features.{index}.bias"] = weight.float(), b.float()
        bn = f"features.{index + 1}"
        channels = weight.shape[0]
        # BatchNorm as the identity: (x - 0) / sqrt((1 - eps) + eps) * 1 + 0.
        state[f"{bn}.weight"], state[f"{bn}.bias"] = torch.ones(channels), torch.zeros(channels)
        state[f"{bn}.running_mean"] = torch.zeros(channels)
        state[f"{bn}.running_var"] = torch.full((channels,), 1 - BN_EPS)
    for key in ("classifier.0", "classifier.3", "classifier.6"):
        state[f"{key}.weight"].zero_()
        state[f"{key}.bias"].zero_()
    if dense:
        (_, (fc1, b1)), (_, (fc2, b2)), (_, (fc3, b3)) = dense
        # Keras flattens block5_pool as (h, w, c), torchvision as (c, h, w).
        fc1 = torch.from_numpy(fc1).reshape(7, 7, 512, 4096).permute(3, 2, 0, 1).reshape(4096, 25088)
        for key, w, b in (("classifier.0", fc1, b1), ("classifier.3", torch.from_numpy(fc2).T, b2),
                          ("classifier.6", torch.from_numpy(fc3).T, b3)):
            state[f"{key}.weight"] = w.contiguous().float()
            state[f"{key}.bias"] = torch.from_numpy(b).float()
    return state, {"layout": layout, "classifier": bool(dense)}
