"""The KServe predictor (kserve_predictor/, one process for the whole test run) through tritonclient, over
REST (binary and JSON tensors) and gRPC: every operation answers what the suite's TorchServe
answers for the same fields; refusals name the field as TorchServe's do; versions, metadata,
KServe's v1 protocol; the event loop answers while a batch runs; it listens on loopback alone."""
import base64
import threading

import numpy as np
import psutil
import pytest
import requests
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from tests.support import TINY
from tests.support.images import png
from tests.support.oip import CASES, LAYER_ZIP, PHOTO, assert_torchserves_answer, refusal_message, torchserve, \
    triton_inputs

pytestmark = pytest.mark.e2e
TRANSPORTS = ["http", "http-json", "grpc"]


@pytest.fixture(scope="module")
def clients(kserve_predictor):
    return {"http": thttp.InferenceServerClient(kserve_predictor["http"], network_timeout=300),
            "grpc": tgrpc.InferenceServerClient(kserve_predictor["grpc"])}


def infer(clients, transport, model, fields, **kw):
    """name -> numpy array of every output (BYTES as bytes)."""
    module = tgrpc if transport == "grpc" else thttp
    inputs = triton_inputs(module, fields, binary=transport != "http-json", pixels=transport == "http-json")
    result = clients["grpc" if transport == "grpc" else "http"].infer(model, inputs, **kw)
    names = [o["name"] for o in result.get_response(**({"as_json": True} if transport == "grpc" else {}))["outputs"]]
    return {name: result.as_numpy(name) for name in names}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("operation", list(CASES))
def test_every_operation_answers_what_torchserve_answers(api, clients, operation, transport):
    assert_torchserves_answer(torchserve(api, operation, CASES[operation]),
                              infer(clients, transport, operation, CASES[operation]))


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_whole_layer_as_a_zip_is_torchserves(api, clients, transport):
    assert_torchserves_answer(torchserve(api, "visualize", LAYER_ZIP),
                              infer(clients, transport, "visualize", LAYER_ZIP))


def test_integers_and_floats_of_either_width_are_the_same_fields(clients):
    fields = {"layer": 7, "filter": 3, "lr": 0.1, **TINY}
    inputs = triton_inputs(thttp, fields)
    narrow, wide = thttp.InferInput("layer", [1], "INT32"), thttp.InferInput("lr", [1], "FP64")
    narrow.set_data_from_numpy(np.array([7], np.int32))
    wide.set_data_from_numpy(np.array([0.1], np.float64))
    mixed = [narrow if i.name() == "layer" else wide if i.name() == "lr" else i for i in inputs]
    assert np.array_equal(clients["http"].infer("visualize", mixed).as_numpy("image"),
                          infer(clients, "http", "visualize", fields)["image"])


REFUSED = [
    ("visualize", {"layer": 7, **TINY}),  # filter missing
    ("visualize", {"filter": 3, "layer": 99}),
    ("visualize", {"filter": 3, "speed": "fast"}),
    ("visualize", {"filter": 3, "blur": None, "size": 16, "upscaling_steps": 40}),
    ("activations", {"data": b"not an image"}),
    ("activations", {"data": png(1, 100_000)}),
    ("gradcam", {"data": PHOTO, "target": 1000}),
]


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize("operation, fields", REFUSED, ids=[f"{o}-{'-'.join(f)}" for o, f in REFUSED])
def test_a_refusal_names_the_field_as_torchserves_does(api, clients, transport, operation, fields):
    message = refusal_message(torchserve(api, operation, fields))
    with pytest.raises(InferenceServerException) as caught:
        infer(clients, transport, operation, fields)
    assert caught.value.status() == ("StatusCode.INVALID_ARGUMENT" if transport == "grpc" else "400")
    assert caught.value.message() == message


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_stream_is_refused_naming_it(clients, transport):
    with pytest.raises(InferenceServerException) as caught:
        infer(clients, transport, "visualize", {"layer": 7, "filter": 3, "stream": True, **TINY})
    assert caught.value.message().startswith("stream: ")


def test_versions_by_path_and_by_request(clients, kserve_predictor):
    fields = {"layer": 7, "filter": 4, **TINY}
    plain = infer(clients, "http", "visualize", fields)["image"]
    for transport in ("http", "grpc"):
        assert np.array_equal(infer(clients, transport, "visualize", fields, model_version="1.0")["image"], plain)
        with pytest.raises(InferenceServerException) as caught:
            infer(clients, transport, "visualize", fields, model_version="9.9")
        assert caught.value.message() == "model_version: '9.9' is not served; versions: 1.0"
    response = requests.post(f"http://{kserve_predictor['http']}/v2/models/layers/versions/1.0/infer", timeout=60,
                             json={"inputs": [{"name": "size", "shape": [1], "datatype": "INT64", "data": [32]}]})
    assert response.status_code == 200 and response.json()["model_version"] == "1.0"


def test_health_and_each_models_metadata(clients):
    for client in clients.values():
        assert client.is_server_live() and client.is_server_ready()
        assert all(client.is_model_ready(name) for name in CASES)
    http = clients["http"].get_model_metadata("activations")
    assert http["inputs"][0] == {"name": "data", "datatype": "UINT8", "shape": [-1, -1, 3]}
    assert {"name": "activations", "datatype": "FP32", "shape": [-1]} in http["outputs"]
    grpc = clients["grpc"].get_model_metadata("visualize", as_json=True)
    assert {"name": "filter", "datatype": "INT64", "shape": ["1"]} in grpc["inputs"]
    assert {"name": "image", "datatype": "UINT8", "shape": ["-1", "-1", "3"]} in grpc["outputs"]


def test_outputs_asked_for_as_json_and_a_zip_refused_so(clients):
    fields = {"layer": 7, "filter": 3, **TINY}
    asked = [thttp.InferRequestedOutput(name, binary_data=False) for name in ("image", "activation_final")]
    result = clients["http"].infer("visualize", triton_inputs(thttp, fields), outputs=asked)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["image", "activation_final"]
    assert "data" in result.get_response()["outputs"][0]  # JSON, not binary
    assert np.array_equal(result.as_numpy("image"), infer(clients, "http", "visualize", fields)["image"])
    with pytest.raises(InferenceServerException) as caught:
        clients["http"].infer("visualize", triton_inputs(thttp, LAYER_ZIP),
                              outputs=[thttp.InferRequestedOutput("zip", binary_data=False)])
    assert caught.value.status() == "400" and caught.value.message().startswith("zip: holds binary data")


def test_kserve_v1_instances_and_explanations_are_torchserves(api, kserve_predictor):
    base = f"http://{kserve_predictor['http']}/v1/models"
    body = {"instances": [{"layer": 14, "size": 32, "data": {"b64": base64.b64encode(PHOTO).decode()}}]}
    for operation, verb, path in (("activations", "predict", "predictions"), ("gradcam", "explain", "explanations")):
        ours = requests.post(f"{base}/{operation}:{verb}", json=body, timeout=120)
        theirs = requests.post(f"{api.inference}/{path}/{operation}", json=body, headers=api.auth, timeout=120)
        assert ours.status_code == theirs.status_code == 200 and ours.json() == theirs.json()
    refused = requests.post(f"{base}/visualize:predict", json={"instances": [{"layer": 7}]}, timeout=60)
    assert refused.status_code == 400 and refused.json() == {
        "error": "instances[0].filter: required; expected an integer >= 0"}


def test_malformed_bodies_and_unknown_models_answer_oips_error(kserve_predictor):
    base = f"http://{kserve_predictor['http']}/v2/models"
    bad = requests.post(f"{base}/visualize/infer", data=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("body: ")
    assert requests.post(f"{base}/nosuch/infer", json={"inputs": []}).status_code == 404


def test_the_event_loop_answers_while_a_batch_runs(clients, kserve_predictor):
    """A request that takes seconds runs in its model's thread: REST and gRPC health checks answer
    meanwhile, many times over."""
    slow = {"layer": 30, "filter": 1, "size": 32, "upscaling_steps": 5, "opt_steps": 8, "seed": 7}
    body = {"inputs": [{"name": name, "shape": [1], "datatype": "INT64", "data": [value]}
                       for name, value in slow.items()]}
    url = f"http://{kserve_predictor['http']}/v2/models/visualize/infer"
    answers = []
    worker = threading.Thread(target=lambda: answers.append(requests.post(url, json=body, timeout=300)))
    worker.start()
    answered_during = 0
    while worker.is_alive():
        ready = clients["grpc"].is_server_ready() and requests.get(
            f"http://{kserve_predictor['http']}/v2/health/ready", timeout=30).status_code == 200
        answered_during += ready and worker.is_alive()
    worker.join()
    assert answers[0].status_code == 200 and answered_during >= 3


def test_it_listens_on_loopback_alone(kserve_predictor):
    listening = [c.laddr for c in psutil.Process(kserve_predictor["pid"]).connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert {address.port for address in listening} == {18280, 18281}
    assert {address.ip for address in listening} <= {"127.0.0.1", "::ffff:127.0.0.1"}
