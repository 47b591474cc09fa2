import json
import os
import sys
import tempfile
from types import SimpleNamespace

import pytest
import requests
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# The handler's result cache, for every handler and server the suite makes: fresh each session.
os.environ["FEATUREVIZ_CACHE_DIR"] = tempfile.mkdtemp(prefix="featureviz-cache-")
sys.path.insert(0, os.path.join(ROOT, "handler"))

from featureviz.model.network import Model, build_model  # noqa: E402
from featureviz.model.weights import random_state_dict  # noqa: E402
from featureviz.service.refusals import Refusal  # noqa: E402
from featureviz.service.operations import OPERATIONS  # noqa: E402
from serving import archive, torchserve  # noqa: E402


@pytest.fixture(scope="session")
def state_dict():
    """The same seeded random weights that WEIGHTS=random puts in the archive."""
    return random_state_dict(0)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, state_dict):
    """What TorchServe unpacks an archive built with WEIGHTS=random into, for handler tests."""
    path = tmp_path_factory.mktemp("model")
    torch.save(state_dict, path / "vgg16_bn.pth")
    (path / "weights.json").write_text(json.dumps({"source": "random", "seed": 0, "trained": False,
                                                   "sha256": "0" * 64}))
    return str(path)


@pytest.fixture(scope="session")
def model(state_dict):
    return build_model(state_dict)


@pytest.fixture(scope="session")
def features(model):
    return model.features


@pytest.fixture(scope="session")
def engine(state_dict):
    """What the service's operations run on: featureviz.model.network.Model."""
    return Model(state_dict)


def run_operation(engine, operation, fields):
    """One request of an image or network operation, parsed and run as the service's worker does
    (those operations use nothing of the worker but its model); a refusal is raised."""
    spec = OPERATIONS[operation]
    result = spec.run(SimpleNamespace(model=engine), [spec.parse(fields, engine)])[0]
    if isinstance(result, Refusal):
        raise result
    return result


@pytest.fixture(scope="session")
def reference(state_dict):
    """A fresh torchvision vgg16_bn, in-place ReLUs and all, with the same weights: for
    independent computations."""
    from torchvision.models import vgg16_bn
    model = vgg16_bn(weights=None)
    model.load_state_dict(state_dict)
    return model.eval().requires_grad_(False)


def reference_layer_output(state_dict, layer, x, grad: bool = False):
    """An independent forward pass: a fresh torchvision vgg16_bn, modules applied one by one
    (with `grad`, differentiable in x)."""
    from torchvision.models import vgg16_bn
    net = vgg16_bn(weights=None)
    net.load_state_dict(state_dict)
    net.eval()
    with torch.set_grad_enabled(grad):
        for module in list(net.features)[: layer + 1]:
            x = module(x.clone())
    return x


TINY = {"size": 16, "upscaling_steps": 2, "opt_steps": 2}  # a visualize that takes well under a second


# A real TorchServe for the end-to-end and gRPC tests: built from this checkout with random
# weights, on its own ports and temp dir, so it can run beside `make serve`.
PORTS = {"8080": "18080", "8081": "18081", "8082": "18082", "7070": "17070", "7071": "17071"}


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("torchserve")
    store = work / "model_store"
    archive.build("random", "1.0", str(store))
    config = torchserve.remap(open(os.path.join(ROOT, "config.properties")).read(), PORTS, str(store))
    config += "\ninitial_worker_port=19000\n"
    (work / "config.properties").write_text(config)
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    try:
        # The shipped configuration (handler.grpc_stream false); grpc_stream_version adds a
        # visualize with gRPC progress on.
        props = torchserve.start(str(work / "config.properties"), workdir=str(work), model_store=str(store),
                                 tmpdir=str(tmpdir), timeout=900, environ={"FEATUREVIZ_GRPC_STREAM": ""})
        yield {"props": props, "keys": torchserve.keys(str(work)), "work": work, "store": store}
    finally:
        torchserve.stop(str(tmpdir))


@pytest.fixture(scope="session")
def api(served):
    class Api:
        inference = served["props"]["inference_address"]
        management = served["props"]["management_address"]
        auth = {"Authorization": f"Bearer {served['keys']['inference']}"}
        manage = {"Authorization": f"Bearer {served['keys']['management']}"}

        def visualize(self, fields, path="visualize", **kw):
            return requests.post(f"{self.inference}/predictions/{path}", json=fields, headers=self.auth,
                                 timeout=600, **kw)

        def activations(self, **kw):
            return requests.post(f"{self.inference}/predictions/activations", timeout=120, **kw)

        def worker_pids(self):
            pids = {}
            for name in ("visualize", "activations"):
                body = requests.get(f"{self.management}/models/{name}", headers=self.manage, timeout=10).json()
                pids[name] = [w["pid"] for entry in body for w in entry["workers"]]
            return pids
    return Api()


GRPC_STREAM_VERSION = "1.0-grpc-stream"


@pytest.fixture(scope="module")
def grpc_stream_version(served, api):
    """visualize registered once more on the suite's server, as version GRPC_STREAM_VERSION, from
    the same archive unpacked with handler.grpc_stream true in its model-config.yaml: gRPC
    progress on for that version alone. Unregistered after the module."""
    import zipfile
    folder = served["store"] / "featureviz-grpc-stream"
    if not folder.exists():
        with zipfile.ZipFile(served["store"] / "featureviz.mar") as mar:
            mar.extractall(folder)
        config = folder / "model-config.yaml"
        text = config.read_text()
        assert "grpc_stream: false" in text
        config.write_text(text.replace("grpc_stream: false", "grpc_stream: true"))
        manifest_path = folder / "MAR-INF" / "MANIFEST.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["model"]["modelVersion"] = GRPC_STREAM_VERSION
        manifest_path.write_text(json.dumps(manifest))
    registered = requests.post(f"{api.management}/models", headers=api.manage, timeout=300,
                               params={"url": folder.name, "model_name": "visualize", "initial_workers": 1,
                                       "synchronous": "true"})
    assert registered.status_code == 200, registered.text
    try:
        yield GRPC_STREAM_VERSION
    finally:
        requests.delete(f"{api.management}/models/visualize/{GRPC_STREAM_VERSION}", headers=api.manage,
                        timeout=60)
