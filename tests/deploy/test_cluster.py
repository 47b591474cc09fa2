"""The cluster on loopback, as `make serve-cluster` runs it: two TorchServe replicas (token auth off)
sharing one result cache, behind the gateway (deploy/gateway: nginx with the API key, gRPC, /ping
from each replica's readiness check). Real processes; every wait is bounded."""
import json
import os
import socket
import time
from types import SimpleNamespace

import grpc
import psutil
import pytest
import requests
from google.protobuf import empty_pb2

from tests.support import TINY
from serving.cluster import Cluster, Layout, api_key, replica_config
from serving.client import inference_key, predict
from serving.grpc_stubs import load
from tests.support.images import png

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]

KEY = "cluster-test-key_0123456789"
LAYOUT = Layout(http="127.0.0.1:18190", grpc="127.0.0.1:19170", metrics="127.0.0.1:19182",
                base=18200, grpc_base=17200, worker_base=19300)
HTTP = f"http://{LAYOUT.http}"
MODELS = ["visualize", "activations"]  # of the eight: what the tests call, in less memory
AUTH = {"Authorization": f"Bearer {KEY}"}


def test_the_key_is_generated_private_then_reused_unless_one_is_given(tmp_path):
    path = str(tmp_path / ".api_key")
    key, where = api_key(None, path)
    assert where == path and len(key) >= 32 and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert api_key(None, path) == (key, path)
    assert api_key("given-key", path) == ("given-key", path) and open(path).read() == "given-key\n"
    assert inference_key(path) == "given-key"
    (tmp_path / "key_file.json").write_text('{"inference": {"key": "ts-key"}}')
    assert inference_key(str(tmp_path / "key_file.json")) == "ts-key"


def test_each_replica_config_is_the_container_config_on_its_own_ports():
    one = dict(line.split("=", 1) for line in replica_config(1, LAYOUT, "/store", MODELS).splitlines()
               if line and not line.startswith("#"))
    assert one["inference_address"] == "http://127.0.0.1:18210" and one["grpc_inference_port"] == "17210"
    assert one["management_address"] == "http://127.0.0.1:18211" and one["metrics_address"].endswith(":18212")
    assert one["load_models"] == "visualize=featureviz.mar,activations=featureviz.mar"
    assert one["model_store"] == "/store" and one["initial_worker_port"] == "19400"
    assert one["disable_token_authorization"] == "true"


def ping():
    return requests.get(f"{HTTP}/ping", timeout=10)


def models_ready(replica: int) -> bool:
    management = f"http://127.0.0.1:{LAYOUT.ports(replica)['8081']}"
    for model in MODELS:
        workers = [w for e in requests.get(f"{management}/models/{model}", timeout=10).json() for w in e["workers"]]
        if not any(w["status"] == "READY" for w in workers):
            return False
    return True


@pytest.fixture(scope="module")
def cluster(served, tmp_path_factory):
    state = tmp_path_factory.mktemp("cluster")
    key_file = state / "api-key"
    key_file.write_text(KEY + "\n")
    store = str(served["work"] / "model_store")
    cluster = Cluster(str(state), LAYOUT)
    try:
        cluster.start_gateway(2, str(key_file), store, MODELS)
        before = ping()
        cluster.start_replicas(store, str(tmp_path_factory.mktemp("shared-cache")))
        deadline = time.monotonic() + 600
        while (first := ping()).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        # The replica that said ready, asked directly, the moment the gateway said so.
        ready_when_200 = models_ready(int(first.headers["X-Served-By"].removeprefix("replica-")))
        cluster.wait_ready(600)
        yield SimpleNamespace(cluster=cluster, before=before, first=first, ready_when_200=ready_when_200)
    finally:
        cluster.stop()


def test_ping_needs_no_key_and_is_200_only_once_the_models_are_loaded(cluster):
    assert cluster.before.status_code == 503
    assert set(cluster.before.json()["models"]) == set(MODELS)
    assert cluster.first.status_code == 200 and cluster.ready_when_200
    assert cluster.first.json() == {"status": "ready", "models": {m: "READY" for m in MODELS}}
    assert ping().status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_no_key_or_a_wrong_one_gets_401_json_over_http(cluster, headers):
    response = requests.post(f"{HTTP}/predictions/visualize", json={"filter": 1, **TINY}, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.json()["type"] == "Unauthorized" and "Bearer" in response.json()["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["X-Served-By"] == "gateway"


@pytest.mark.parametrize("key", [None, "wrong"])
def test_no_key_or_a_wrong_one_is_unauthenticated_over_grpc(cluster, key):
    messages, stubs = load("inference")
    with grpc.insecure_channel(LAYOUT.grpc) as channel, pytest.raises(grpc.RpcError) as caught:
        stubs.InferenceAPIsServiceStub(channel).Predictions(
            messages.PredictionsRequest(model_name="visualize", input={"filter": b"1"}),
            metadata=[("authorization", f"Bearer {key}")] if key else None, timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "API key" in caught.value.details()


def test_grpc_ping_needs_no_key(cluster):
    messages, stubs = load("inference")
    with grpc.insecure_channel(LAYOUT.grpc) as channel:
        health = stubs.InferenceAPIsServiceStub(channel).Ping(empty_pb2.Empty(), timeout=30)
    assert "Healthy" in health.health


def test_the_key_gets_the_bytes_a_lone_server_gives(cluster, api):
    fields = {"layer": 7, "filter": 11, **TINY}
    through = requests.post(f"{HTTP}/predictions/visualize", json=fields, headers=AUTH, timeout=120)
    assert through.status_code == 200 and through.headers["Content-Type"] == "image/png"
    assert through.headers["X-Served-By"] in ("replica-0", "replica-1")
    assert through.content == api.visualize(fields).content
    assert predict(LAYOUT.grpc, KEY, "visualize", fields, timeout=120) == through.content

    image = {"data": ("x.png", png(40, 40), "image/png"), "layer": (None, "14"), "size": (None, "32")}
    through = requests.post(f"{HTTP}/predictions/activations", files=image, headers=AUTH, timeout=120)
    assert through.status_code == 200
    assert through.content == api.activations(files=image, headers=api.auth).content


def test_requests_reach_both_replicas(cluster):
    served_by = set()
    for _ in range(6):
        response = requests.post(f"{HTTP}/predictions/activations", headers=AUTH, timeout=120,
                                 files={"data": ("x.png", png(32, 32), "image/png"), "size": (None, "32")})
        assert response.status_code == 200
        served_by.add(response.headers["X-Served-By"])
    assert served_by == {"replica-0", "replica-1"}


def test_a_visualize_made_on_one_replica_is_a_cache_hit_on_the_other(cluster):
    fields = {"layer": 7, "filter": 21, "seed": 20261129, **TINY}
    first = requests.post(f"{HTTP}/predictions/visualize", json=fields, headers=AUTH, timeout=120)
    assert first.headers["X-Cache"] == "miss"
    for _ in range(4):
        again = requests.post(f"{HTTP}/predictions/visualize", json=fields, headers=AUTH, timeout=120)
        if again.headers["X-Served-By"] != first.headers["X-Served-By"]:
            break
    assert again.headers["X-Served-By"] != first.headers["X-Served-By"]
    assert again.headers["X-Cache"] == "hit" and again.content == first.content


def test_a_stream_passes_the_gateway_event_by_event(cluster):
    fields = {"layer": 7, "filter": 5, "size": 16, "upscaling_steps": 3, "opt_steps": 2, "stream": True}
    with requests.post(f"{HTTP}/predictions/visualize", json=fields, headers=AUTH, stream=True, timeout=120) as r:
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-ndjson"
        assert r.headers["X-Served-By"] in ("replica-0", "replica-1")
        events = [json.loads(line) for line in r.iter_lines() if line]
    assert [e["event"] for e in events] == ["scale", "scale", "scale", "done"]


def test_the_metrics_of_a_replica_pass_the_gateway(cluster):
    response = requests.get(f"http://{LAYOUT.metrics}/metrics", timeout=30)
    assert response.status_code == 200 and "ts_inference_requests_total" in response.text
    assert response.headers["X-Served-By"] in ("replica-0", "replica-1")


def timed_activations():
    started = time.monotonic()
    response = requests.post(f"{HTTP}/predictions/activations", headers=AUTH, timeout=60,
                             files={"data": ("x.png", png(32, 32), "image/png"), "size": (None, "32")})
    assert response.status_code == 200
    return time.monotonic() - started


def gateway_socket():
    host, port = LAYOUT.http.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_by_the_gateway(connection, deadline) -> bool:
    connection.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        return connection.recv(1024) == b""  # nginx closes a header it timed out without a word
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


HEADER_TIMEOUT = 15  # client_header_timeout of deploy/gateway/nginx.conf.template


def test_200_idle_and_trickling_connections_neither_slow_requests_nor_stay(cluster):
    baseline = sorted(timed_activations() for _ in range(5))[2]
    idle, trickling = [], []
    try:
        for i in range(200):
            connection = gateway_socket()
            if i % 2:
                connection.sendall(b"POST /predictions/activations HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
                trickling.append(connection)
            else:
                idle.append(connection)
        opened = time.monotonic()
        during = []
        for _ in range(6):  # one header byte a second on each trickling connection, meanwhile
            for connection in trickling:
                connection.sendall(b"a")
            during.append(timed_activations())
            time.sleep(max(0.0, 1 - during[-1]))
        assert max(during) < max(3 * baseline, baseline + 2), (baseline, during)
        deadline = opened + HEADER_TIMEOUT + 10
        closed = [closed_by_the_gateway(c, deadline) for c in idle + trickling]
        assert all(closed) and time.monotonic() - opened >= HEADER_TIMEOUT - 1
        assert timed_activations() < max(3 * baseline, baseline + 2)
    finally:
        for connection in idle + trickling:
            connection.close()


PER_ADDRESS = 32  # limit_conn of deploy/gateway/nginx.conf.template


def test_requests_in_progress_from_one_address_are_limited_then_freed(cluster):
    body = png(32, 32)
    held = []
    try:
        for _ in range(PER_ADDRESS):  # each a whole header, then a body that does not come
            connection = gateway_socket()
            connection.sendall(f"POST /predictions/activations HTTP/1.1\r\nHost: gateway\r\n"
                               f"Authorization: Bearer {KEY}\r\nContent-Type: image/png\r\n"
                               f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
            held.append(connection)
        time.sleep(0.5)
        refused = requests.post(f"{HTTP}/predictions/activations", headers={**AUTH, "Content-Type": "image/png"},
                                data=body, timeout=30)
        assert refused.status_code == 429
        held.pop().close()
        time.sleep(0.5)
        assert timed_activations() < 30
    finally:
        for connection in held:
            connection.close()


def test_after_a_replica_is_killed_requests_and_ping_still_succeed(cluster):
    """Last in this module: it kills replica-1's TorchServe (its frontend and workers)."""
    frontend = psutil.Process(cluster.cluster.torchserve_pid(1))
    doomed = [frontend, *frontend.children(recursive=True)]
    for process in doomed:
        process.kill()
    psutil.wait_procs(doomed, timeout=30)
    fields = {"layer": 7, "filter": 2, **TINY}
    answers = [requests.post(f"{HTTP}/predictions/visualize", json=fields, headers=AUTH, timeout=120)
               for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 8
    assert {a.headers["X-Served-By"] for a in answers} == {"replica-0"}
    assert ping().status_code == 200
    assert predict(LAYOUT.grpc, KEY, "visualize", fields, timeout=120) == answers[0].content
    assert not os.path.exists(f"/proc/{frontend.pid}")
