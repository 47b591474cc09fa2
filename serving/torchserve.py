"""Start, wait for, and stop a TorchServe serving the featureviz archive.

    python -m serving start [--config config.properties] [--timeout 300]
    python -m serving stop          # this one, and the A/B proxy, the cluster and the pod

`start` returns once every registered model has a ready worker and answers.
TorchServe keeps its pid file in the temp dir, so a separate TMPDIR gives a separate server
(the test suite uses that to run beside `make serve`).
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from serving import HANDLER, ROOT
from serving.java import java_home

BIN = os.path.dirname(sys.executable)


def _load_readiness():
    """deploy/gateway/readiness.py, which stands alone in the pod: its config reader is this one's."""
    spec = importlib.util.spec_from_file_location("featureviz_readiness",
                                                  os.path.join(ROOT, "deploy", "gateway", "readiness.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_readiness = _load_readiness()
read_properties = _readiness.read_properties
registered_models = _readiness.registered_models  # load_models, or a model_snapshot's names


def temp_dir(tmpdir: str | None = None) -> str:
    """The temp dir of the TorchServe that `tmpdir` names: its pid file and its unpacked archives."""
    return tmpdir or tempfile.gettempdir()


def server_env(tmpdir: str | None = None) -> dict:
    env = dict(os.environ, JAVA_HOME=java_home())
    env["PATH"] = os.path.join(env["JAVA_HOME"], "bin") + os.pathsep + BIN + os.pathsep + env.get("PATH", "")
    if tmpdir:
        env["TMPDIR"] = tmpdir
    # Java reads no TMPDIR: without this the frontend unpacks every model's archive into the system
    # temp dir, where stop() would not find it and a killed server's copies would stay.
    unpack_into = f"-Djava.io.tmpdir={temp_dir(tmpdir)}"
    env["JAVA_TOOL_OPTIONS"] = " ".join(filter(None, [os.environ.get("JAVA_TOOL_OPTIONS"), unpack_into]))
    return env


def keys(workdir: str) -> dict:
    """TorchServe's key_file.json in the directory it started from: inference and management keys."""
    with open(os.path.join(workdir, "key_file.json")) as f:
        data = json.load(f)
    return {kind: data[kind]["key"] for kind in ("inference", "management", "API")}


def call(url: str, token: str | None = None, method: str = "GET", timeout: float = 5) -> bytes:
    """The body of an HTTP call to TorchServe with a bearer token; raises on a non-2xx status."""
    request = urllib.request.Request(url, method=method,
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def remap(config_text: str, ports: dict, model_store: str) -> str:
    """A config.properties text on other ports ({"8080": 18080, ...}: each old port number that
    follows ':' or '=') and with another model store; everything else as it was."""
    pattern = r"(?<=[:=])(%s)\b" % "|".join(map(re.escape, map(str, ports)))
    text = re.sub(pattern, lambda m: str(ports[m.group(1)]), config_text)
    return re.sub(r"^model_store=.*$", f"model_store={model_store}", text, flags=re.M)


def token_auth(props: dict) -> bool:
    """TorchServe 0.12 checks tokens unless its config turns that off (behind the cluster gateway)."""
    return props.get("disable_token_authorization", "false").lower() != "true"


def wait_ready(props: dict, workdir: str, models: list[str], timeout: float, process_alive=lambda: True):
    deadline = time.monotonic() + timeout
    inference, management = props["inference_address"], props["management_address"]
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not process_alive():
            raise RuntimeError("TorchServe exited during start-up; see logs/ts_log.log")
        try:
            tokens = keys(workdir) if token_auth(props) else {"inference": None, "management": None}
            call(f"{inference}/ping", tokens["inference"])  # TorchServe 0.12 wants the token here too
            ready = 0
            for model in models:
                body = call(f"{management}/models/{model}", tokens["management"])
                workers = [w for entry in json.loads(body) for w in entry.get("workers", [])]
                ready += any(w.get("status") == "READY" for w in workers)
            if ready == len(models):
                return
            last = f"{ready} of {len(models)} models ready"
        except (OSError, urllib.error.URLError, ValueError, KeyError) as error:
            last = str(error)
        time.sleep(1)
    raise TimeoutError(f"TorchServe not ready after {timeout:.0f} s: {last}")


def launch(config: str, workdir: str = ROOT, model_store: str | None = None, tmpdir: str | None = None,
           log_dir: str | None = None, environ: dict | None = None) -> dict:
    """Starts TorchServe in the background (one per temp dir: it replaces the one there) and
    returns its properties without waiting for its models."""
    props = read_properties(config)
    stop(tmpdir, quiet=True)
    store = model_store or os.path.join(ROOT, props.get("model_store", "model_store"))
    env = {**server_env(tmpdir), **(environ or {})}
    if log_dir:
        env["LOG_LOCATION"] = log_dir
        env["METRICS_LOCATION"] = log_dir
    log_dir = log_dir or os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    # The server inherits these descriptors: a file, so no caller's pipe is held open.
    with open(os.path.join(log_dir, "torchserve.out"), "ab") as out:
        subprocess.run([os.path.join(BIN, "torchserve"), "--start", "--ncs", "--ts-config", config,
                        "--model-store", store], cwd=workdir, env=env, check=True,
                       stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return props


def start(config: str, workdir: str = ROOT, model_store: str | None = None, tmpdir: str | None = None,
          timeout: float = 300, log_dir: str | None = None, environ: dict | None = None) -> dict:
    """Starts TorchServe and returns once every registered model has a ready worker and answers."""
    props = launch(config, workdir, model_store, tmpdir, log_dir, environ)
    wait_ready(props, workdir, registered_models(props), timeout)
    return props


def stop(tmpdir: str | None = None, quiet: bool = False):
    """Stops the TorchServe of this temp dir and removes the archives it unpacked there (TorchServe
    leaves each in <temp>/models/<random id>, a copy of the weights per model and start)."""
    subprocess.run([os.path.join(BIN, "torchserve"), "--stop"], env=server_env(tmpdir), check=False,
                   stdout=subprocess.DEVNULL if quiet else None)
    temp = temp_dir(tmpdir)
    if os.path.exists(os.path.join(temp, ".model_server.pid")):
        return  # still running
    models = os.path.join(temp, "models")
    for unpacked in os.listdir(models) if os.path.isdir(models) else []:
        if os.path.exists(os.path.join(models, unpacked, os.path.basename(HANDLER))):
            shutil.rmtree(os.path.join(models, unpacked), ignore_errors=True)


def add_commands(commands):
    start_command = commands.add_parser("start", help="TorchServe from config.properties; returns once its models answer")
    start_command.add_argument("--config", default=os.path.join(ROOT, "config.properties"))
    start_command.add_argument("--timeout", type=float, default=300)
    start_command.set_defaults(run=run_start)


def run_start(args):
    props = start(args.config, timeout=args.timeout)
    print(f"TorchServe ready: inference {props['inference_address']}, management "
          f"{props['management_address']}, gRPC {props.get('grpc_inference_port', 7070)}; "
          f"models {', '.join(registered_models(props))}; keys in {os.path.join(ROOT, 'key_file.json')}")
