"""TorchServe's own gRPC inference API against the suite's server: same bytes as HTTP."""
import concurrent.futures
import json
import threading

import grpc
import pytest

from tests.support import TINY
from serving.client import predict
from serving.grpc_stubs import load
from tests.support.images import png

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def grpc_call(served):
    address = f"127.0.0.1:{served['props']['grpc_inference_port']}"
    key = served["keys"]["inference"]
    return lambda model, inputs, **kw: predict(address, kw.pop("key", key), model, inputs, **kw)


def test_grpc_ping(served):
    messages, stubs = load("inference")
    from google.protobuf import empty_pb2
    with grpc.insecure_channel(f"127.0.0.1:{served['props']['grpc_inference_port']}") as channel:
        health = stubs.InferenceAPIsServiceStub(channel).Ping(
            empty_pb2.Empty(), metadata=[("authorization", f"Bearer {served['keys']['inference']}")], timeout=30)
    assert "Healthy" in health.health


def test_visualize_prediction_is_the_http_body(api, grpc_call):
    fields = {"layer": 7, "filter": 9, **TINY}
    over_http = api.visualize(fields)
    assert over_http.status_code == 200
    assert grpc_call("visualize", fields) == over_http.content
    assert grpc_call("visualize", fields, version="1.0") == over_http.content


def test_activations_prediction_is_the_http_body(api, grpc_call):
    data = png(40, 40)
    over_http = api.activations(files={"data": ("x.png", data, "image/png"), "layer": (None, "14"),
                                       "size": (None, "32")}, headers=api.auth)
    assert over_http.status_code == 200
    prediction = grpc_call("activations", {"data": data, "layer": "14", "size": "32"})
    assert prediction == over_http.content and json.loads(prediction)["layer"] == 14


@pytest.mark.parametrize("model, inputs, field", [
    ("visualize", {"layer": "7"}, "filter"),
    ("visualize", {"filter": "3", "layer": "99"}, "layer"),
    ("visualize", {"filter": "3", "speed": "fast"}, "speed"),
    ("activations", {"data": b"not an image"}, "data"),
])
def test_a_bad_request_alone_is_invalid_argument_with_the_message(grpc_call, model, inputs, field):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_call(model, inputs)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details()


def test_grpc_without_the_token_is_refused(grpc_call):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_call("visualize", {"filter": "1", **TINY}, key="wrong")
    assert caught.value.code() != grpc.StatusCode.OK and "oken" in caught.value.details()


def test_an_unknown_version_is_refused(grpc_call):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_call("visualize", {"filter": "1", **TINY}, version="9.9")
    # TorchServe 0.12's own answer (INTERNAL, where NOT_FOUND would be apt).
    assert "9.9 does not exist" in caught.value.details()


def test_a_bad_request_batched_with_good_ones_gets_its_json_error_as_the_prediction(grpc_call):
    good = {"layer": "7", "filter": "5", **{k: str(v) for k, v in TINY.items()}}
    inputs = [good, {"layer": "7", "filter": "4000"}, good]
    barrier = threading.Barrier(len(inputs))

    def send(fields):
        barrier.wait()  # arrive together, within the model's maxBatchDelay
        try:
            return grpc_call("visualize", fields)
        except grpc.RpcError as error:  # alone in its batch after all
            return error.details().encode()

    with concurrent.futures.ThreadPoolExecutor(len(inputs)) as pool:
        first, bad, last = pool.map(send, inputs)
    assert first == last and first.startswith(b"\x89PNG")
    assert json.loads(bad)["field"] == "filter"


def test_grpc_management_describes_both_models(served):
    messages, stubs = load("management")
    with grpc.insecure_channel(f"127.0.0.1:{served['props']['grpc_management_port']}") as channel:
        stub = stubs.ManagementAPIsServiceStub(channel)
        token = [("authorization", f"Bearer {served['keys']['management']}")]
        # limit: proto3's default 0 would list nothing
        listed = json.loads(stub.ListModels(messages.ListModelsRequest(limit=100), metadata=token, timeout=30).msg)
        assert {m["modelName"] for m in listed["models"]} >= {"visualize", "activations"}
        described = json.loads(stub.DescribeModel(messages.DescribeModelRequest(model_name="visualize",
                                                                                model_version="1.0"),
                                                  metadata=token, timeout=30).msg)
        assert described[0]["modelVersion"] == "1.0" and described[0]["batchSize"] == 4
        with pytest.raises(grpc.RpcError):
            stub.ListModels(messages.ListModelsRequest(limit=100), metadata=[("authorization", "Bearer wrong")],
                            timeout=30)
