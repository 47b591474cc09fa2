"""StreamPredictions and Predictions of every operation against the suite's TorchServe in the
shipped configuration (handler.grpc_stream false), and of visualize with gRPC progress on: every
call answers, and no worker dies (same PIDs, no worker restart in TorchServe's log)."""
import base64
import concurrent.futures
import json
import os
import threading

import grpc
import pytest
import requests

from tests.support import GRPC_STREAM_VERSION, TINY
from serving.client import predict, stream_predict
from tests.support.images import photo

pytestmark = pytest.mark.e2e

IMAGE = {"data": photo(48), "size": "48", "output": "json"}
REQUESTS = {
    "visualize": {"layer": "7", "filter": "50", **{k: str(v) for k, v in TINY.items()}},
    "activations": {"data": photo(48), "size": "48", "layer": "14"},
    "deconv": {**IMAGE, "layer": "14"},
    "saliency": IMAGE,
    "gradcam": IMAGE,
    "occlusion": {**IMAGE, "window": "24", "stride": "24"},
    "layers": {"output": "json"},
    "filters": {"output": "json", "layer": "3"},
}
# A worker lost by the frontend, in ts_log.log
DEATHS = ("Worker disconnected", "WORKER_STOPPED", "Retry worker", "NullPointerException", "IllegalStateException")


@pytest.fixture(scope="module")
def calls(served):
    address = f"127.0.0.1:{served['props']['grpc_inference_port']}"
    key = served["keys"]["inference"]

    class Calls:
        @staticmethod
        def unary(model, inputs, version=""):
            return predict(address, key, model, inputs, version, timeout=300)

        @staticmethod
        def stream(model, inputs, version=""):
            return list(stream_predict(address, key, model, inputs, version, timeout=300))
    return Calls()


@pytest.fixture(scope="module")
def watch(served, api):
    """The workers' PIDs of every model and the frontend's log, before the module's calls; after
    them, the same PIDs and no worker lost."""
    names = list(REQUESTS)

    def pids():
        out = {}
        for name in names:
            body = requests.get(f"{api.management}/models/{name}/1.0", headers=api.manage, timeout=10).json()
            out[name] = sorted(w["pid"] for entry in body for w in entry["workers"])
        return out

    log = os.path.join(served["work"], "logs", "ts_log.log")
    offset = os.path.getsize(log)
    before = pids()
    assert all(before.values())
    yield
    with open(log, errors="replace") as f:
        f.seek(offset)
        text = f.read()
    # (the version with grpc_stream on is unregistered before this: its worker is scaled down then)
    assert [line for line in text.splitlines() if any(d in line for d in DEATHS)
            and GRPC_STREAM_VERSION not in line and "WORKER_SCALED_DOWN" not in line] == []
    assert pids() == before


def plain_http(api, model, inputs):
    files = {k: ("image.png", v, "image/png") if isinstance(v, bytes) else (None, v) for k, v in inputs.items()}
    response = requests.post(f"{api.inference}/predictions/{model}", files=files, headers=api.auth, timeout=300)
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("model", list(REQUESTS))
def test_stream_predictions_of_every_operation_is_one_message_the_http_body(api, calls, watch, model):
    inputs = REQUESTS[model]
    assert calls.stream(model, inputs) == [plain_http(api, model, inputs)]
    assert calls.unary(model, inputs) == plain_http(api, model, inputs)


@pytest.mark.parametrize("model", list(REQUESTS))
def test_stream_true_by_stream_predictions_answers_every_operation(api, calls, watch, model):
    inputs = {**REQUESTS[model], "stream": "true"}
    if model != "visualize":  # only visualize streams: a 400 naming the field, and the worker lives
        with pytest.raises(grpc.RpcError) as caught:
            calls.stream(model, inputs)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "stream" in caught.value.details()
        return
    inputs["filter"] = "51"
    replies = calls.stream(model, inputs)
    assert len(replies) == 1  # the shipped configuration: the done line alone
    done = json.loads(replies[0])
    assert done["event"] == "done" and done["cache"] == "miss"
    plain = {k: v for k, v in inputs.items() if k != "stream"}
    assert base64.b64decode(done["png"]) == plain_http(api, model, plain)


def test_unary_predictions_with_stream_true_gets_the_done_line(api, calls, watch):
    inputs = {**REQUESTS["visualize"], "filter": "52", "stream": "true"}
    done = json.loads(calls.unary("visualize", inputs))
    assert done["event"] == "done" and done["cache"] == "miss"
    assert base64.b64decode(done["png"]) == plain_http(api, "visualize", {**REQUESTS["visualize"], "filter": "52"})


@pytest.mark.parametrize("call", ["stream", "unary"])
def test_a_refusal_is_invalid_argument_naming_the_field(calls, watch, call):
    with pytest.raises(grpc.RpcError) as caught:
        getattr(calls, call)("visualize", {**REQUESTS["visualize"], "layer": "99"})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "layer" in caught.value.details()


def batched(served, calls, jobs, version=""):
    """jobs: (call, inputs) sent together until they share one visualize batch; their answers."""
    log = os.path.join(served["work"], "logs", "model_log.log")
    mark = f"visualize: a batch of {len(jobs)} requests"
    for attempt in range(4):
        before = open(log).read().count(mark)
        barrier = threading.Barrier(len(jobs))

        def send(job):
            call, inputs = job
            barrier.wait()  # arrive together, within the model's maxBatchDelay
            try:
                return getattr(calls, call)("visualize", {**inputs, "seed": str(10 + attempt)}, version)
            except grpc.RpcError as error:
                return error
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            answers = list(pool.map(send, jobs))
        if open(log).read().count(mark) > before:
            return answers
    pytest.fail(f"the {len(jobs)} requests never shared a batch in 4 tries")


def test_stream_and_unary_calls_in_one_batch_each_get_their_answer(served, calls, watch):
    one = {**REQUESTS["visualize"], "filter": "53", "stream": "true"}
    jobs = [("stream", one), ("stream", {**one, "filter": "54"}), ("unary", {**one, "filter": "55"}),
            ("stream", {**one, "filter": "4000"})]
    first, second, unary, refused = batched(served, calls, jobs)
    assert [json.loads(m)["event"] for m in first] == ["done"] and [json.loads(m)["event"] for m in second] == ["done"]
    assert json.loads(unary)["event"] == "done"
    # A bad request that shares a batch with good ones gets its JSON error as the prediction.
    assert json.loads(refused[0])["field"] == "filter"


def test_with_grpc_stream_on_a_batch_of_streams_and_a_unary_call(served, api, calls, watch, grpc_stream_version):
    def pid():
        body = requests.get(f"{api.management}/models/visualize/{grpc_stream_version}", headers=api.manage,
                            timeout=10).json()
        return [w["pid"] for entry in body for w in entry["workers"]]
    before = pid()
    one = {**REQUESTS["visualize"], "filter": "56", "stream": "true"}
    jobs = [("stream", one), ("stream", {**one, "filter": "57"}), ("stream", {k: v for k, v in one.items()
                                                                              if k != "stream"})]
    first, second, plain = batched(served, calls, jobs, grpc_stream_version)
    for replies in (first, second):
        events = [json.loads(m)["event"] for m in replies]
        assert events == ["scale"] * TINY["upscaling_steps"] + ["done"]
    assert len(plain) == 1 and plain[0].startswith(b"\x89PNG")
    # A unary Predictions without stream on that version: one answer, and the worker lives on.
    assert calls.unary("visualize", {**one, "filter": "58", "stream": "false"}, grpc_stream_version) \
        .startswith(b"\x89PNG")
    assert pid() == before
