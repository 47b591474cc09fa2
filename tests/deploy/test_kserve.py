"""deploy/kserve/v1/config/config.properties as the KServe runtime (deploy/kserve/runtime.yaml) starts
it, on loopback: the paths go to a temp model store and the ports to free ones, nothing else changes;
no environment is added (the runtime sets none, and no service envelope: the handler reads KServe's
v1 bodies itself). Then, without a token, the management API that the runtime's readiness probe reads,
for each model of the snapshot, and v1 predictions on the routes KServe calls
(tests/deploy/test_container.py runs the same config in the image, as the runtime starts it)."""
import base64
import json
import os

import pytest
import requests

from tests.support import ROOT, TINY
from serving import torchserve
from tests.support.images import png

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]

CONFIG = os.path.join(ROOT, "deploy", "kserve", "v1", "config", "config.properties")
PORTS = {"8080": "18185", "8081": "18186", "8082": "18182", "7070": "17170", "7071": "17171"}


@pytest.fixture(scope="module")
def kserve(served, tmp_path_factory):
    work = tmp_path_factory.mktemp("kserve")
    text = torchserve.remap(open(CONFIG).read(), PORTS, str(served["work"] / "model_store"))
    text = text.replace("0.0.0.0", "127.0.0.1")
    (work / "config.properties").write_text(text + "initial_worker_port=19600\n")
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    props = torchserve.read_properties(str(work / "config.properties"))
    try:
        torchserve.launch(str(work / "config.properties"), workdir=str(work), model_store=props["model_store"],
                          tmpdir=str(tmpdir))
        torchserve.wait_ready(props, str(work), torchserve.registered_models(props), 600)
        yield props
    finally:
        torchserve.stop(str(tmpdir))


def test_the_config_turns_token_auth_and_environment_configuration_off():
    props = torchserve.read_properties(CONFIG)
    assert props["disable_token_authorization"] == "true" and props["enable_envvars_config"] == "false"
    # KServe's traffic reaches TorchServe itself on the runtime's port; management stays on loopback.
    assert props["inference_address"] == "http://0.0.0.0:8080"
    assert props["management_address"].startswith("http://127.0.0.1:")


def test_the_management_api_the_readiness_probe_reads_answers_for_every_model_without_a_token(kserve):
    models = json.loads(kserve["model_snapshot"])["models"]
    assert len(models) == 8
    for name in models:
        response = requests.get(f"{kserve['management_address']}/models/{name}?customized=false", timeout=30)
        assert response.status_code == 200, name
        workers = response.json()[0]["workers"]
        assert any(worker["status"] == "READY" for worker in workers), name


@pytest.mark.parametrize("path", ["/predictions/{}", "/v1/models/{}:predict"])
def test_v1_visualize_gives_the_png_of_a_lone_server_as_base64(kserve, api, path):
    fields = [{"layer": 7, "filter": 13, **TINY}, {"layer": 14, "filter": 2, **TINY}]
    response = requests.post(kserve["inference_address"] + path.format("visualize"), json={"instances": fields},
                             timeout=300)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["content_type"] for p in predictions] == ["image/png", "image/png"]
    for one, prediction in zip(fields, predictions):
        assert base64.b64decode(prediction["b64"]) == api.visualize(one).content


def test_v1_activations_are_the_json_a_lone_server_gives(kserve, api):
    image = png(40, 40)
    body = {"instances": [{"data": {"b64": base64.b64encode(image).decode()}, "layer": 14, "size": 32}]}
    response = requests.post(f"{kserve['inference_address']}/predictions/activations", json=body, timeout=300)
    assert response.status_code == 200, response.text
    alone = api.activations(files={"data": ("x.png", image, "image/png"), "layer": (None, "14"),
                                   "size": (None, "32")}, headers=api.auth).json()
    assert response.json()["predictions"] == [alone]


def test_a_bad_v1_instance_is_a_400_naming_it(kserve):
    body = {"instances": [{"layer": 7, "filter": 3, **TINY}, {"layer": 7, "filter": 9999}]}
    response = requests.post(f"{kserve['inference_address']}/predictions/visualize", json=body, timeout=300)
    assert response.status_code == 400 and response.json()["field"] == "instances[1].filter"
