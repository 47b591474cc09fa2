"""The suite's fixtures: seeded weights, a model directory as TorchServe unpacks it, the suite's
TorchServe. The helpers the tests share are in tests/support/."""
import json
import os
import sys
import tempfile

import pytest
import requests
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# The handler's result cache, for every handler and server the suite makes: fresh each session.
os.environ["FEATUREVIZ_CACHE_DIR"] = tempfile.mkdtemp(prefix="featureviz-cache-")
sys.path.insert(0, os.path.join(ROOT, "handler"))
# The helpers' asserts report their values as a test's do.
pytest.register_assert_rewrite("tests.support")

from featureviz.model.network import Model, build_model  # noqa: E402
from featureviz.model.weights import random_state_dict  # noqa: E402
from serving import archive, torchserve  # noqa: E402
from tests.support import GRPC_STREAM_VERSION  # noqa: E402


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


@pytest.fixture(scope="session")
def reference(state_dict):
    """A fresh torchvision vgg16_bn, in-place ReLUs and all, with the same weights: for
    independent computations."""
    from torchvision.models import vgg16_bn
    model = vgg16_bn(weights=None)
    model.load_state_dict(state_dict)
    return model.eval().requires_grad_(False)


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


# The KServe predictor (kserve_predictor/) over the suite's archive, on ports of its own.
KSERVE_PORTS = {"http": 18280, "grpc": 18281}


@pytest.fixture(scope="session")
def kserve_predictor(served, tmp_path_factory):
    """One predictor for the whole test run, from the suite's TorchServe archive (the same weights), with a
    result cache of its own: an image equal to TorchServe's is computed, not read back."""
    from serving import kserve
    work = tmp_path_factory.mktemp("kserve")
    try:
        pid = kserve.start([str(served["store"] / "featureviz.mar")], KSERVE_PORTS["http"], KSERVE_PORTS["grpc"],
                           state_dir=str(work), log=str(work / "kserve.log"),
                           environ={"FEATUREVIZ_CACHE_DIR": str(work / "cache")}, timeout=600)
        yield {"http": f"127.0.0.1:{KSERVE_PORTS['http']}", "grpc": f"127.0.0.1:{KSERVE_PORTS['grpc']}", "pid": pid,
               "log": work / "kserve.log"}
    finally:
        kserve.stop(str(work))


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
