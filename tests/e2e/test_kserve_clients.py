"""KServe's own clients against the KServe predictor: InferenceRESTClient (v2 and v1) and
InferenceGRPCClient, run by tests/support/kserve_clients.py in a process of their own (kserve cannot
be imported beside tritonclient.grpc). Each operation over REST (the image as UINT8 pixels: REST's
JSON carries no other bytes) answers what TorchServe answers; refusals name the field; the REST
client cannot read a zip (its BYTES outputs must be UTF-8) and is told so by name, the gRPC client
reads a whole layer's zip."""
import base64
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.support import ROOT
from tests.support.oip import CASES, LAYER_ZIP, assert_torchserves_answer, refusal_message, tensors, torchserve

pytestmark = pytest.mark.e2e
REFUSED = ("visualize", {"filter": 3, "layer": 99})
INSTANCES = {"instances": [{"layer": 7, "filter": 5, "size": 16, "upscaling_steps": 2, "opt_steps": 2}]}


def call(client, model, fields, **extra) -> dict:
    """One call of the plan tests/support/kserve_clients.py runs."""
    inputs = []
    for name, datatype, array in tensors(fields, pixels=client != "grpc"):
        data = [base64.b64encode(v).decode() for v in array.reshape(-1)] if datatype == "BYTES" else array.tolist()
        inputs.append([name, datatype, list(array.shape), data])
    return {"client": client, "model": model, "inputs": inputs, **extra}


PLAN = {
    **{f"rest-{operation}": call("rest", operation, fields) for operation, fields in CASES.items()},
    "rest-refused": call("rest", *REFUSED),
    "grpc-refused": call("grpc", *REFUSED),
    "rest-zip": call("rest", "visualize", LAYER_ZIP),
    "grpc-zip": call("grpc", "visualize", LAYER_ZIP, version="1.0"),
    "grpc-unknown-version": call("grpc", "visualize", LAYER_ZIP, version="9.9"),
    "rest-v1": {"client": "rest-v1", "model": "visualize", "body": INSTANCES},
}


@pytest.fixture(scope="module")
def results(kserve_predictor):
    done = subprocess.run([sys.executable, "-m", "tests.support.kserve_clients", kserve_predictor["http"],
                           kserve_predictor["grpc"]], input=json.dumps(list(PLAN.values())), capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    return dict(zip(PLAN, json.loads(done.stdout)))


def arrays(result: dict) -> dict:
    """A result's outputs as the tests read tritonclient's: numpy arrays, BYTES as bytes."""
    assert "outputs" in result, result
    return {name: np.array([base64.b64decode(v) for v in o["data"]], object) if o["datatype"] == "BYTES"
            else np.array(o["data"], {"UINT8": np.uint8, "FP32": np.float32}.get(o["datatype"], np.int64))
            for name, o in result["outputs"].items()}


@pytest.mark.parametrize("operation", list(CASES))
def test_each_operation_over_kserves_rest_client_is_torchserves(api, results, operation):
    assert_torchserves_answer(torchserve(api, operation, CASES[operation]), arrays(results[f"rest-{operation}"]))


def test_a_refusal_names_the_field_as_torchserves_does(api, results):
    message = refusal_message(torchserve(api, *REFUSED))
    assert results["rest-refused"] == {"error": {"status": 400, "message": message}}
    assert results["grpc-refused"] == {"error": {"status": "INVALID_ARGUMENT", "message": message}}


def test_a_whole_layers_zip_comes_over_grpc_and_is_refused_by_name_over_rest(api, results):
    assert_torchserves_answer(torchserve(api, "visualize", LAYER_ZIP), arrays(results["grpc-zip"]))
    error = results["rest-zip"]["error"]
    assert error["status"] == 400 and error["message"].startswith("zip: holds binary data")
    assert results["grpc-unknown-version"]["error"] == {
        "status": "INVALID_ARGUMENT", "message": "model_version: '9.9' is not served; versions: 1.0"}


def test_v1_instances_over_kserves_rest_client_are_torchserves(api, results):
    theirs = torchserve(api, "visualize", INSTANCES)
    assert theirs.status_code == 200
    predictions = [{k: v for k, v in p.items() if k != "cache"} for p in theirs.json()["predictions"]]
    assert [{k: v for k, v in p.items() if k != "cache"} for p in results["rest-v1"]["predictions"]] == predictions
