"""The images, built as `make image` builds them (WEIGHTS=random; the engine's layer cache makes a
second build take seconds), and run with podman: the image itself, the pod of deploy/k8s/ as
`make serve-image` runs it (serving/pod.py, on other loopback ports), and the image as our KServe
runtime (deploy/kserve/runtime.yaml) starts it, and as the KServe predictor's runtime
(deploy/kserve/predictor-runtime.yaml) starts it. Real containers; every wait is bounded."""
import base64
import io
import json
import os
import subprocess
import tempfile
import time
import zipfile
from types import SimpleNamespace

import grpc
import pytest
import requests
import yaml

from tests.support import ROOT, TINY
from serving import image, pod
from serving.client import predict
from serving.grpc_stubs import load
from tests.support.images import png
from tests.support.handler import call, lone_png, make_handler

pytestmark = [pytest.mark.container, pytest.mark.deploy, pytest.mark.e2e]

IMAGE, GATEWAY_IMAGE = "featureviz:test", "featureviz-gateway:test"
KEY = "container-test-key_0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PORTS = {8090: 18490, 9070: 19470, 9082: 19482}  # the gateway's, on 127.0.0.1
HTTP, GRPC = f"http://127.0.0.1:{PORTS[8090]}", f"127.0.0.1:{PORTS[9070]}"
KSERVE_PORT = 18480
KSERVE_PREDICTOR_PORTS = (18481, 18482)  # its REST and gRPC
MODELS = ["visualize", "activations"]  # of the eight: what the tests call, in less memory
POD = "featureviz-test"
TORCHSERVE = f"{POD}-torchserve"


def podman(*args, check=True, timeout=120, **kw):
    done = subprocess.run(["podman", *args], capture_output=True, text=True, env=image.engine_env(),
                          timeout=timeout, **kw)
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def images():
    assert image.engine_or_none() == "podman", "no podman: `make container-tools` installs it (apt)"
    started, revision = time.monotonic(), image.revision()
    image.build("random", IMAGE, GATEWAY_IMAGE)
    return {"build_s": time.monotonic() - started, "revision": revision}


def in_image(*command, user="1000:1000", read_only=True):
    args = ["run", "--rm", "--user", user] + (["--read-only", "--read-only-tmpfs=false"] if read_only else [])
    return podman(*args, "--entrypoint", json.dumps(list(command)), IMAGE, check=False, timeout=300)


def test_python_is_bookworms_3_11_and_pip_check_is_clean(images):
    version = in_image("python3", "--version")
    assert version.returncode == 0 and version.stdout.startswith("Python 3.11."), version.stdout + version.stderr
    check = in_image("pip", "check")
    assert check.returncode == 0 and "No broken requirements found" in check.stdout, check.stdout + check.stderr


def test_the_kernel_loads_without_a_compiler_on_a_read_only_root(images):
    code = ("import shutil; from featureviz.model import native, pool_relu; "
            "print(shutil.which('cc'), shutil.which('gcc'), pool_relu.kernel_available(), native.prebuilt('pool_relu'))")
    done = in_image("sh", "-c", f'cd "$APP" && python -c "{code}"')
    assert done.returncode == 0, done.stderr
    cc, gcc, available, library = done.stdout.split()
    assert (cc, gcc, available) == ("None", "None", "True")
    from featureviz.model import native
    best = native.processor_levels()[0]  # this machine's highest level; the image has one for each
    assert library == f"/usr/local/featureviz/native/pool_relu-{native.source_digest('pool_relu')}-{best}.so"


def test_the_image_says_what_it_is(images):
    labels = json.loads(podman("image", "inspect", "--format", "{{json .Labels}}", IMAGE).stdout)
    assert labels["org.opencontainers.image.title"] == "featureviz"
    assert labels["io.featureviz.weights"] == "random"
    assert labels["org.opencontainers.image.revision"] == images["revision"]
    assert labels["org.opencontainers.image.version"] == "test"
    gateway = json.loads(podman("image", "inspect", "--format", "{{json .Labels}}", GATEWAY_IMAGE).stdout)
    assert gateway["org.opencontainers.image.revision"] == images["revision"]
    config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", IMAGE).stdout)
    assert config["User"] == "1000:1000" and config["Entrypoint"] == ["/usr/local/bin/featureviz-entrypoint"]


def copy_archive(folder):
    """The image's own featureviz.mar, copied into folder."""
    holder = podman("create", IMAGE).stdout.strip()
    try:
        podman("cp", f"{holder}:/home/model-server/model-store/featureviz.mar", folder)
    finally:
        podman("rm", holder)
    return os.path.join(folder, "featureviz.mar")


def pod_precision() -> str:
    """The arithmetic the pod's manifest names for its TorchServe (and the KServe runtimes name alike)."""
    with open(os.path.join(ROOT, "deploy", "k8s", "featureviz.yaml")) as f:
        deployment = next(d for d in yaml.safe_load_all(f) if d and d["kind"] == "Deployment")
    (torchserve,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "torchserve"]
    return next(e["value"] for e in torchserve["env"] if e["name"] == "FEATUREVIZ_PRECISION")


@pytest.fixture(scope="module")
def handlers(images, tmp_path_factory):
    """The engine in this process, behind the handler, on the image's archive unpacked here, in the
    arithmetic the pod names (tf32: on a CPU, fp32's arithmetic under another name)."""
    model_dir = tmp_path_factory.mktemp("archive")
    with zipfile.ZipFile(copy_archive(str(model_dir))) as archive:
        archive.extractall(model_dir)
    named, os.environ["FEATUREVIZ_PRECISION"] = os.environ.get("FEATUREVIZ_PRECISION"), pod_precision()
    try:
        return {name: make_handler(name, str(model_dir)) for name in MODELS}
    finally:
        if named is None:
            del os.environ["FEATUREVIZ_PRECISION"]
        else:
            os.environ["FEATUREVIZ_PRECISION"] = named


def ping():
    return requests.get(f"{HTTP}/ping", timeout=10)


@pytest.fixture(scope="module")
def served_pod(images, tmp_path_factory):
    state = tmp_path_factory.mktemp("pod")
    key_file = state / "api-key"
    key_file.write_text(KEY + "\n")
    running = pod.Pod(pod.render(), state_dir=str(state), name=POD, ports=PORTS, models=MODELS,
                      images={image.IMAGE: IMAGE, image.GATEWAY_IMAGE: GATEWAY_IMAGE})
    try:
        running.start(str(key_file))
        deadline = time.monotonic() + 60
        before = None
        while before is None and time.monotonic() < deadline:  # the gateway's first answer
            try:
                before = ping()
            except requests.ConnectionError:
                time.sleep(0.2)
        assert before is not None, "the pod's gateway does not answer"
        deadline = time.monotonic() + 600
        while (first := ping()).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        yield SimpleNamespace(pod=running, before=before, first=first)
    finally:
        running.stop()


def test_ping_is_503_until_every_model_is_loaded_then_200(served_pod):
    assert served_pod.before.status_code == 503
    assert served_pod.before.json()["status"] == "not ready"
    assert served_pod.first.status_code == 200
    assert served_pod.first.json() == {"status": "ready", "models": {m: "READY" for m in MODELS}}
    assert served_pod.first.headers["X-Served-By"] == POD


def test_the_server_container_is_non_root_on_a_read_only_root(served_pod):
    assert podman("exec", TORCHSERVE, "id", "-u").stdout.strip() == "1000"
    assert podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", TORCHSERVE).stdout.strip() == "true"
    written = podman("exec", TORCHSERVE, "touch", "/usr/local/featureviz/x", check=False)
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    assert podman("exec", TORCHSERVE, "touch", "/tmp/x", "/home/model-server/logs/x",
                  "/home/model-server/cache/x").returncode == 0  # its volumes
    gateway = f"{POD}-gateway"
    assert podman("exec", gateway, "id", "-u").stdout.strip() == "101"
    assert podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", gateway).stdout.strip() == "true"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_no_key_or_a_wrong_one_gets_401_over_http(served_pod, headers):
    response = requests.post(f"{HTTP}/predictions/visualize", json={"filter": 1, **TINY}, headers=headers, timeout=30)
    assert response.status_code == 401 and response.json()["type"] == "Unauthorized"


def test_no_key_is_unauthenticated_over_grpc(served_pod):
    messages, stubs = load("inference")
    with grpc.insecure_channel(GRPC) as channel, pytest.raises(grpc.RpcError) as caught:
        stubs.InferenceAPIsServiceStub(channel).Predictions(
            messages.PredictionsRequest(model_name="visualize", input={"filter": b"1"}), timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_key_gets_the_bytes_the_engine_computes(served_pod, handlers):
    fields = {"layer": 7, "filter": 11, **TINY}
    through = requests.post(f"{HTTP}/predictions/visualize", json=fields, headers=AUTH, timeout=120)
    assert through.status_code == 200 and through.headers["Content-Type"] == "image/png"
    assert through.headers["X-Served-By"] == POD
    assert through.content == lone_png(handlers["visualize"], fields)
    assert predict(GRPC, KEY, "visualize", fields, timeout=120) == through.content

    image_bytes = png(40, 40)
    form = {"data": ("x.png", image_bytes, "image/png"), "layer": (None, "14"), "size": (None, "32")}
    through = requests.post(f"{HTTP}/predictions/activations", files=form, headers=AUTH, timeout=120)
    assert through.status_code == 200
    out, statuses, _, _ = call(handlers["activations"], [{"data": image_bytes, "layer": b"14", "size": b"32"}])
    assert statuses == [200] and json.loads(through.content) == json.loads(out[0])


def test_metrics_pass_the_gateway(served_pod):
    response = requests.get(f"http://127.0.0.1:{PORTS[9082]}/metrics", timeout=30)
    assert response.status_code == 200 and "ts_inference_requests_total" in response.text


def restarts(name):
    return int(podman("inspect", "--format", "{{.RestartCount}}", name).stdout.strip())


def test_killed_torchserve_gets_a_json_503_then_the_pod_restarts_it(served_pod):
    """Last of the pod's tests: it kills TorchServe (the JVM) inside the server container."""
    before = restarts(TORCHSERVE)
    podman("exec", TORCHSERVE, "sh", "-c", "kill -9 $(cat /tmp/.model_server.pid)")
    fields = {"layer": 7, "filter": 3, **TINY}
    started = time.monotonic()
    down = requests.post(f"{HTTP}/predictions/visualize", json=fields, headers=AUTH, timeout=60)
    assert time.monotonic() - started < 30
    assert down.status_code in (502, 503) and down.headers["Content-Type"].startswith("application/json")
    assert down.json()["code"] in (502, 503) and down.json()["message"]

    deadline = time.monotonic() + 600
    while (ping().status_code != 200 or restarts(TORCHSERVE) == before) and time.monotonic() < deadline:
        time.sleep(1)
    assert restarts(TORCHSERVE) == before + 1
    assert ping().status_code == 200
    again = requests.post(f"{HTTP}/predictions/visualize", json=fields, headers=AUTH, timeout=120)
    assert again.status_code == 200 and again.headers["Content-Type"] == "image/png"
    unpacked = podman("exec", TORCHSERVE, "ls", "/tmp/models").stdout.split()
    assert len(unpacked) == len(MODELS)  # the pod's /tmp kept the killed server's, the entrypoint removed them


@pytest.fixture(scope="module")
def kserve(images, served_pod):
    """The image as deploy/kserve/runtime.yaml starts it, the storage URI's layout on /mnt/models:
    v1's config (its snapshot cut to MODELS) and the image's own archive."""
    served_pod.pod.stop()  # one TorchServe at a time in this machine's memory
    with open(os.path.join(ROOT, "deploy", "kserve", "runtime.yaml")) as f:
        (c,) = yaml.safe_load(f)["spec"]["containers"]
    storage = tempfile.mkdtemp(prefix="featureviz-kserve-")
    os.makedirs(os.path.join(storage, "config"))
    os.makedirs(os.path.join(storage, "model-store"))
    with open(os.path.join(ROOT, "deploy", "kserve", "v1", "config", "config.properties")) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("model_snapshot="):
            snapshot = json.loads(line.split("=", 1)[1])
            snapshot["models"] = {m: snapshot["models"][m] for m in MODELS}
            snapshot["modelCount"] = len(MODELS)
            lines[i] = "model_snapshot=" + json.dumps(snapshot, separators=(",", ":"))
    with open(os.path.join(storage, "config", "config.properties"), "w") as f:
        f.write("\n".join(lines) + "\n")
    name = f"{POD}-kserve"
    podman("rm", "--force", "--ignore", "--volumes", name)
    copy_archive(os.path.join(storage, "model-store"))
    os.chmod(storage, 0o755)
    env = [arg for e in c.get("env", []) for arg in ("-e", f"{e['name']}={e['value']}")]
    port = c["ports"][0]["containerPort"]
    try:
        podman("run", "-d", "--name", name, "--user", str(c["securityContext"]["runAsUser"]),
               "--security-opt", "no-new-privileges", "--cap-drop", "ALL", *env,
               "-v", f"{storage}:/mnt/models:ro", "-p", f"127.0.0.1:{KSERVE_PORT}:{port}", IMAGE, *c["args"])
        probe = c["readinessProbe"]["exec"]["command"]
        deadline = time.monotonic() + 600
        while (ready := podman("exec", name, *probe, check=False)).returncode != 0 and time.monotonic() < deadline:
            assert podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true", \
                podman("logs", name).stdout[-3000:]
            time.sleep(2)
        yield SimpleNamespace(url=f"http://127.0.0.1:{KSERVE_PORT}", ready=ready, container=c)
    finally:
        podman("rm", "--force", "--ignore", "--volumes", name)
        subprocess.run(["rm", "-rf", storage])


def test_kserve_readiness_probe_says_ready_once_the_models_load(kserve):
    assert kserve.ready.returncode == 0
    assert json.loads(kserve.ready.stdout) == {"status": "ready", "models": {m: "READY" for m in MODELS}}


def test_kserve_v1_predict_on_the_runtimes_port_gives_the_engines_bytes(kserve, handlers):
    fields = [{"layer": 7, "filter": 13, **TINY}, {"layer": 14, "filter": 2, **TINY}]
    response = requests.post(f"{kserve.url}/v1/models/visualize:predict", json={"instances": fields}, timeout=300)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["content_type"] for p in predictions] == ["image/png", "image/png"]
    for one, prediction in zip(fields, predictions):
        assert base64.b64decode(prediction["b64"]) == lone_png(handlers["visualize"], one)


def test_kserve_v1_activations_and_a_bad_instance(kserve, handlers):
    image_bytes = png(40, 40)
    body = {"instances": [{"data": {"b64": base64.b64encode(image_bytes).decode()}, "layer": 14, "size": 32}]}
    response = requests.post(f"{kserve.url}/v1/models/activations:predict", json=body, timeout=300)
    assert response.status_code == 200, response.text
    out, _, _, _ = call(handlers["activations"], [{"data": image_bytes, "layer": b"14", "size": b"32"}])
    assert response.json()["predictions"] == [json.loads(out[0])]
    bad = {"instances": [{"layer": 7, "filter": 3, **TINY}, {"layer": 7, "filter": 9999}]}
    response = requests.post(f"{kserve.url}/v1/models/visualize:predict", json=bad, timeout=300)
    assert response.status_code == 400 and "instances[1].filter" in response.text, response.text


@pytest.fixture(scope="module")
def kserve_predictor(images, served_pod):
    """The image as deploy/kserve/predictor-runtime.yaml starts it (`kserve`: KServe's model server),
    the storage URI's model-store/ on /mnt/models with the image's own archive, on a read-only root."""
    served_pod.pod.stop()  # one server at a time in this machine's memory
    podman("rm", "--force", "--ignore", "--volumes", f"{POD}-kserve")
    with open(os.path.join(ROOT, "deploy", "kserve", "predictor-runtime.yaml")) as f:
        (c,) = yaml.safe_load(f)["spec"]["containers"]
    storage = tempfile.mkdtemp(prefix="featureviz-kserve-predictor-")
    os.makedirs(os.path.join(storage, "model-store"))
    copy_archive(os.path.join(storage, "model-store"))
    os.chmod(storage, 0o755)
    name = f"{POD}-kserve-predictor"
    podman("rm", "--force", "--ignore", "--volumes", name)
    http, grpc_port = KSERVE_PREDICTOR_PORTS
    try:
        env = [arg for e in c.get("env", []) for arg in ("-e", f"{e['name']}={e['value']}")]
        podman("run", "-d", "--name", name, "--user", str(c["securityContext"]["runAsUser"]), "--read-only",
               "--read-only-tmpfs=false", "--security-opt", "no-new-privileges", "--cap-drop", "ALL", *env,
               "-v", f"{storage}:/mnt/models:ro", "-p", f"127.0.0.1:{http}:8080", "-p", f"127.0.0.1:{grpc_port}:8081",
               IMAGE, *c["args"])
        probe = f"http://127.0.0.1:{http}{c['readinessProbe']['httpGet']['path']}"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true", \
                podman("logs", name).stdout[-3000:]
            try:
                if requests.get(probe, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(2)
        yield SimpleNamespace(name=name, http=f"127.0.0.1:{http}", grpc=f"127.0.0.1:{grpc_port}")
    finally:
        podman("rm", "--force", "--ignore", "--volumes", name)
        subprocess.run(["rm", "-rf", storage])


def test_the_kserve_predictor_answers_the_engines_pixels_over_rest_and_grpc(kserve_predictor, handlers):
    """The pixels: the runtime names tf32, which on a CPU is fp32's arithmetic under another name."""
    import numpy as np
    import tritonclient.grpc as tgrpc
    import tritonclient.http as thttp
    from PIL import Image
    fields = {"layer": 7, "filter": 13, **TINY}
    expected = np.asarray(Image.open(io.BytesIO(lone_png(handlers["visualize"], fields))).convert("RGB"))
    for module, address in ((thttp, kserve_predictor.http), (tgrpc, kserve_predictor.grpc)):
        client = module.InferenceServerClient(address)
        assert client.is_server_ready() and client.is_model_ready("visualize")
        inputs = []
        for name, value in fields.items():
            tensor = module.InferInput(name, [1], "INT64")
            tensor.set_data_from_numpy(np.array([value], np.int64))
            inputs.append(tensor)
        assert np.array_equal(client.infer("visualize", inputs).as_numpy("image"), expected), module.__name__


def test_the_kserve_predictor_runs_as_1000_on_a_read_only_root(kserve_predictor):
    assert podman("exec", kserve_predictor.name, "id", "-u").stdout.strip() == "1000"
    written = podman("exec", kserve_predictor.name, "touch", "/usr/local/featureviz/x", check=False)
    assert written.returncode != 0 and "Read-only file system" in written.stderr
