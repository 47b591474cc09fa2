"""The lean network's max-pool + ReLU (model.pool_relu's C kernel) against PyTorch's own max-pool and
ReLU: the same values and gradients, bit for bit."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from featureviz.model import native, pool_relu
from featureviz.model.pool_relu import PoolReLU
from featureviz.optim.objectives import channel
from featureviz.optim.readout import readout
from featureviz.optim.param.pixel import Schedule
from bench.ours import visualize
from tests.support import ROOT

TINY = Schedule(size=24, upscaling_steps=3, upscaling_factor=1.3, opt_steps=3, lr=0.1, blur=3)


def channels_last(t):
    return t.contiguous(memory_format=torch.channels_last)


def pool_then_relu(x):
    return F.relu(F.max_pool2d(x, 2, 2))


def value_and_gradient(module, x, grad_y=None):
    x = x.detach().clone().requires_grad_(True)
    y = module(x)
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y.dtype) if grad_y is None else grad_y
    y.backward(grad_y)
    return y.detach(), x.grad, grad_y


@pytest.mark.compiler
def test_the_c_kernel_builds_here():
    """The suite's machine has a C compiler: the kernel, not the fallback, is what runs below."""
    assert pool_relu.kernel_available()
    assert pool_relu.kernel_applies(channels_last(torch.randn(1, 8, 6, 6)))


@pytest.mark.compiler
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", [(1, 64, 40, 40), (3, 16, 13, 9), (2, 5, 2, 3)])
def test_pool_relu_kernel_equals_max_pool_then_relu(dtype, shape):
    """Odd sides (the last row and column no window covers get zero gradient), batches, and
    windows whose maximum is negative (closed: no gradient)."""
    x = channels_last((torch.randn(shape, generator=torch.Generator().manual_seed(0)) - 1).to(dtype))
    assert pool_relu.kernel_applies(x)
    y, grad, grad_y = value_and_gradient(PoolReLU(nn.MaxPool2d(2, 2)), x)
    y_ref, grad_ref, _ = value_and_gradient(pool_then_relu, x, grad_y)
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, y_ref) and torch.equal(grad, grad_ref)
    assert (y == 0).any() and (grad != 0).any()


@pytest.mark.compiler
def test_pool_relu_kernel_gives_ties_and_nans_to_the_window_pixel_pytorch_does():
    """PyTorch's winner: the first maximum in row-major order; a NaN wins (the last NaN)."""
    windows = [[1.0, 1.0, 0.5, 1.0], [0.5, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0], [-1.0, -1.0, -2.0, -1.0],
               [1.0, float("nan"), 3.0, float("nan")], [float("nan"), 1.0, 2.0, 3.0]]
    x = torch.zeros(1, 1, 2, 2 * len(windows))
    for i, (a, b, c, d) in enumerate(windows):
        x[0, 0, :, 2 * i: 2 * i + 2] = torch.tensor([[a, b], [c, d]])
    x = channels_last(x.expand(1, 3, -1, -1))
    grad_y = torch.arange(1.0, 1.0 + 3 * len(windows)).view(1, 3, 1, len(windows))
    y, grad, _ = value_and_gradient(PoolReLU(nn.MaxPool2d(2, 2)), x, grad_y)
    y_ref, grad_ref, _ = value_and_gradient(pool_then_relu, x, grad_y)
    assert torch.equal(y.isnan(), y_ref.isnan()) and torch.equal(y.nan_to_num(), y_ref.nan_to_num())
    assert torch.equal(grad, grad_ref)
    assert grad[0, 0, 0, 0] == 1 and grad[0, 0, 0, 1] == 0  # the tie of window 0: its first pixel


def test_pool_relu_falls_back_to_pytorch_where_the_kernel_does_not_apply(monkeypatch):
    x = torch.randn(2, 4, 9, 7)  # not channels-last
    assert not pool_relu.kernel_applies(x)
    assert torch.equal(PoolReLU(nn.MaxPool2d(2, 2))(x), pool_then_relu(x))
    assert not PoolReLU(nn.MaxPool2d(3, 2)).fused
    assert not PoolReLU(nn.MaxPool2d(2, 2), kernel=False).fused
    monkeypatch.setattr(pool_relu, "MAX_THREADS", torch.get_num_threads() - 1)
    assert not pool_relu.kernel_applies(channels_last(x))


@pytest.mark.slow
def test_without_a_compiler_the_kernel_is_not_built_and_pytorch_runs(tmp_path):
    """A fresh process with no compiler and an empty cache: load() gives None, and the module
    computes the same as with the kernel."""
    code = ("import torch; from featureviz.model import native, pool_relu; from torch import nn\n"
            "assert native.load('pool_relu') is None and not pool_relu.kernel_available()\n"
            "x = torch.randn(1, 8, 10, 10).contiguous(memory_format=torch.channels_last)\n"
            "assert not pool_relu.kernel_applies(x)\n"
            "y = pool_relu.PoolReLU(nn.MaxPool2d(2, 2))(x)\n"
            "assert torch.equal(y, torch.relu(torch.nn.functional.max_pool2d(x, 2, 2)))\n"
            "print('fallback ok')\n")
    environ = dict(os.environ, CC=str(tmp_path / "no-such-compiler"), XDG_CACHE_HOME=str(tmp_path / "cache"),
                   PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "fallback ok" in done.stdout
    assert not list((tmp_path / "cache").rglob("*.so"))


@pytest.mark.compiler
def test_the_library_is_built_once_into_the_cache_and_shared(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    assert native.load("pool_relu") is not None
    built = list((tmp_path / "featureviz-native").iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(native, "_loaded", {})
    assert native.load("pool_relu") is not None
    assert [p.stat().st_mtime_ns for p in (tmp_path / "featureviz-native").iterdir()] == [stamp]
    monkeypatch.setenv(native.DISABLE, "0")
    assert native.load("pool_relu") is None


@pytest.mark.compiler
@pytest.mark.parametrize("layer, precision", [(7, "bf16"), (14, "fp32")])
def test_visualize_gives_the_same_image_with_the_kernel_or_without(features, layer, precision):
    pools = [m for m in readout(features, [channel(layer, 3)], pool_kernel=False).shared if isinstance(m, PoolReLU)]
    assert pools and not any(m.fused for m in pools)
    fused = visualize(features, layer, 3, TINY, seed=5, precision=precision)
    plain = visualize(features, layer, 3, TINY, seed=5, precision=precision, pool_kernel=False)
    assert torch.equal(fused.image, plain.image)
    assert fused.activation_final == plain.activation_final > fused.activation_start


@pytest.mark.slow
@pytest.mark.compiler
def test_only_the_visualize_worker_builds_and_names_the_kernel(state_dict, tmp_path):
    """The handler logs what each operation says of how it computes; only visualize runs the lean
    network, and builds the kernel for it."""
    from featureviz.service.service import Service
    from featureviz.service.settings import Settings
    about = {"source": "random", "seed": 0, "trained": False, "sha256": "0" * 64}
    said = {operation: Service(operation, state_dict, about, "1.0", "cpu",
                               Settings({"cache_dir": str(tmp_path), "precision": "fp32"}, environ={})
                               ).operation.describe()
            for operation in ("visualize", "activations", "layers")}
    assert said == {"visualize": "fp32; C kernels: pool_relu", "activations": "fp32", "layers": "fp32"}
