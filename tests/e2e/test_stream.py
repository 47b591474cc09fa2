"""visualize with stream: true against the real TorchServe: HTTP chunks and gRPC StreamPredictions."""
import base64
import concurrent.futures
import json
import os
import subprocess
import sys

import grpc
import pytest
import requests

from serving.grpc_stubs import load
from tests.support import ROOT

pytestmark = pytest.mark.e2e

SCHEDULE = {"layer": 7, "size": 16, "upscaling_steps": 4, "opt_steps": 2}
SIDES = [16, 19, 22, 26]


def http_stream(api, fields):
    """(status, content type, headers, the NDJSON lines as they came)."""
    with requests.post(f"{api.inference}/predictions/visualize", json=fields, headers=api.auth, stream=True,
                       timeout=300) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
        return response.status_code, response.headers["Content-Type"], response.headers, lines


def grpc_stream(served, fields, version=""):
    messages, stubs = load("inference")
    inputs = {k: json.dumps(v).encode() for k, v in fields.items()}
    address = f"127.0.0.1:{served['props']['grpc_inference_port']}"
    with grpc.insecure_channel(address) as channel:
        replies = stubs.InferenceAPIsServiceStub(channel).StreamPredictions(
            messages.PredictionsRequest(model_name="visualize", model_version=version, input=inputs),
            metadata=[("authorization", f"Bearer {served['keys']['inference']}")], timeout=300)
        return [json.loads(reply.prediction) for reply in replies]


def check_events(events, fields):
    assert [e["event"] for e in events] == ["scale"] * len(SIDES) + ["done"]
    assert [e["scale"] for e in events[:-1]] == [1, 2, 3, 4] and [e["side"] for e in events[:-1]] == SIDES
    assert all(e["scales"] == 4 and isinstance(e["activation"], float) for e in events[:-1])
    done = events[-1]
    assert (done["filter"], done["layer"], done["cache"]) == (str(fields["filter"]), "7", "miss")
    return base64.b64decode(done["png"])


def test_an_http_stream_is_chunks_of_events_then_the_png_of_the_plain_answer(api):
    fields = {**SCHEDULE, "filter": 31, "seed": 1}
    status, content_type, headers, events = http_stream(api, {**fields, "stream": True})
    assert status == 200 and content_type == "application/x-ndjson"
    assert headers.get("Transfer-Encoding") == "chunked" and headers["X-Model-Version"] == "1.0"
    png = check_events(events, fields)
    plain = api.visualize(fields)
    assert plain.headers["X-Cache"] == "hit" and png == plain.content

    status, _, _, again = http_stream(api, {**fields, "stream": True})
    assert status == 200 and [e["event"] for e in again] == ["done"] and again[0]["cache"] == "hit"
    assert base64.b64decode(again[0]["png"]) == png


def test_the_readme_http_client_streams_then_writes_the_plain_answers_png(api, served, tmp_path):
    key_file = tmp_path / ".api_key"
    key_file.write_text(served["keys"]["inference"])
    fields = {**SCHEDULE, "filter": 33, "seed": 4}

    def client(fields, *options):
        return subprocess.run([sys.executable, "-m", "scripts.http_client", "visualize",
                               *(f"{k}={v}" for k, v in fields.items()), "--url", api.inference,
                               "--key-file", str(key_file), *options],
                              cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    done = client(fields, "--stream", "-o", str(tmp_path / "out.png"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1])["cache"] == "miss"
    plain = api.visualize(fields)
    assert plain.headers["X-Cache"] == "hit" and (tmp_path / "out.png").read_bytes() == plain.content

    refused = client({**fields, "layer": 99})
    assert refused.returncode != 0 and "HTTP 400" in refused.stderr and "layer" in refused.stderr


def test_a_grpc_stream_is_a_message_per_event_where_grpc_stream_is_on(api, served, grpc_stream_version):
    fields = {**SCHEDULE, "filter": 32, "seed": 2}
    png = check_events(grpc_stream(served, {**fields, "stream": True}, grpc_stream_version), fields)
    plain = api.visualize(fields, path=f"visualize/{grpc_stream_version}")
    assert plain.headers["X-Cache"] == "hit" and png == plain.content


def test_in_the_shipped_configuration_a_grpc_stream_is_the_done_line_alone(api, served):
    fields = {**SCHEDULE, "filter": 34, "seed": 2}
    events = grpc_stream(served, {**fields, "stream": True})
    assert [e["event"] for e in events] == ["done"] and events[0]["cache"] == "miss"
    assert base64.b64decode(events[0]["png"]) == api.visualize(fields).content


@pytest.mark.parametrize("fields, field", [({"stream": True, **SCHEDULE}, "filter"),
                                           ({"filter": 1, "stream": "soon", **SCHEDULE}, "stream")])
def test_a_bad_streamed_request_gets_its_4xx_before_any_event(api, served, fields, field):
    response = api.visualize(fields)
    assert response.status_code == 400 and response.headers["Content-Type"] == "application/json"
    assert response.json()["field"] == field
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stream(served, fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in caught.value.details()


def test_two_streamed_requests_in_one_batch_each_get_their_own_events(api, served):
    log = os.path.join(served["work"], "logs", "model_log.log")
    for attempt in range(4):  # until the two arrive within one batch window (20 ms)
        before = open(log).read().count("visualize: a batch of 2 requests, 2 streamed")
        fields = [{**SCHEDULE, "filter": 40 + 2 * attempt + k, "seed": 9} for k in (0, 1)]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            streams = list(pool.map(lambda f: http_stream(api, {**f, "stream": True}), fields))
        for (status, _, _, events), one in zip(streams, fields):
            assert status == 200
            assert check_events(events, one) == api.visualize(one).content
        if open(log).read().count("visualize: a batch of 2 requests, 2 streamed") > before:
            return
    pytest.fail("the two requests never shared a batch in 4 tries")
