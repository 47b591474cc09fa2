import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "handler"))

from featureviz.network import build_model  # noqa: E402
from featureviz.weights import random_state_dict  # noqa: E402


@pytest.fixture(scope="session")
def state_dict():
    """The same seeded random weights that WEIGHTS=random puts in the archive."""
    return random_state_dict(0)


@pytest.fixture(scope="session")
def model(state_dict):
    return build_model(state_dict)


@pytest.fixture(scope="session")
def features(model):
    return model.features


def reference_layer_output(state_dict, layer, x):
    """An independent forward pass: a fresh torchvision vgg16_bn, modules applied one by one."""
    from torchvision.models import vgg16_bn
    net = vgg16_bn(weights=None)
    net.load_state_dict(state_dict)
    net.eval()
    with torch.no_grad():
        for module in list(net.features)[: layer + 1]:
            x = module(x.clone())
    return x
