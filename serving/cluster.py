"""A cluster on this machine: TorchServe replicas behind the gateway, as a Kubernetes Service of
pods would run them.

    python -m serving cluster start [--replicas 2] [--api-key KEY] [--timeout 600]
    python -m serving cluster stop

Each replica is a TorchServe from the container configuration (deploy/config.properties: loopback,
token auth off) on its own loopback ports, temp dir and logs, with a readiness check
(deploy/gateway/readiness.py) beside it; all share one result-cache folder. The gateway is
deploy/gateway/entrypoint.sh with its nginx template, as in the pod, listening on 127.0.0.1:8090
(HTTP), 9070 (gRPC) and 9082 (metrics). Without --api-key (or API_KEY) the key is generated into
.api_key (mode 0600), or read from it when it exists. `start` returns once every replica's models
answer.
"""
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from serving import ROOT
from serving import torchserve
GATEWAY = os.path.join(ROOT, "deploy", "gateway")
CONTAINER_CONFIG = os.path.join(ROOT, "deploy", "config.properties")
STATE_DIR = os.path.join(ROOT, "build", "cluster")
KEY_FILE = os.path.join(ROOT, ".api_key")
CONTAINER_PORTS = ("8080", "8081", "8082", "7070", "7071")


@dataclass(frozen=True)
class Layout:
    """Where things listen. Replica i takes ports base + 10 i + (0..2 HTTP, 9 readiness) and
    grpc_base + 10 i + (0, 1); its workers start at worker_base + 100 i."""
    http: str = "127.0.0.1:8090"
    grpc: str = "127.0.0.1:9070"
    metrics: str = "127.0.0.1:9082"
    base: int = 8100
    grpc_base: int = 7100
    worker_base: int = 9200

    def ports(self, i: int) -> dict:
        b, g = self.base + 10 * i, self.grpc_base + 10 * i
        return {"8080": b, "8081": b + 1, "8082": b + 2, "7070": g, "7071": g + 1, "ready": b + 9}


def replica_config(i: int, layout: Layout, model_store: str, models: list[str] | None = None) -> str:
    """The container configuration with replica i's ports, the model store, and (for tests) fewer models."""
    ports = {port: number for port, number in layout.ports(i).items() if port in CONTAINER_PORTS}
    text = torchserve.remap(open(CONTAINER_CONFIG).read(), ports, model_store)
    if models is not None:
        loaded = dict(e.split("=", 1) for e in torchserve.read_properties(CONTAINER_CONFIG)["load_models"].split(","))
        entries = ",".join(f"{name}={loaded[name]}" for name in models)
        text = re.sub(r"^load_models=.*$", f"load_models={entries}", text, flags=re.M)
    return text + f"\ninitial_worker_port={layout.worker_base + 100 * i}\n"


def api_key(given: str | None, key_file: str = KEY_FILE) -> tuple[str, str]:
    """(key, file holding it): the given key, else the file's, else a new one written there."""
    if given:
        key = given
    elif os.path.exists(key_file):
        return open(key_file).read().strip(), key_file
    else:
        key = secrets.token_urlsafe(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(key_file, 0o600)
    return key, key_file


def gateway_env(layout: Layout, replicas: int, key_file: str, prefix: str) -> dict:
    def servers(port_name, extra=""):
        return " ".join(f"server 127.0.0.1:{layout.ports(i)[port_name]}{extra};" for i in range(replicas))

    names = " ".join(f"127.0.0.1:{layout.ports(i)[port]} replica-{i};"
                     for i in range(replicas) for port in ("8080", "ready", "8082"))
    return {
        "FEATUREVIZ_API_KEY_FILE": key_file,
        "FEATUREVIZ_GATEWAY_TEMPLATE": os.path.join(GATEWAY, "nginx.conf.template"),
        "FEATUREVIZ_GATEWAY_PREFIX": prefix,
        "FEATUREVIZ_GATEWAY_NAME": "gateway",
        "FEATUREVIZ_HTTP_LISTEN": layout.http,
        "FEATUREVIZ_GRPC_LISTEN": layout.grpc,
        "FEATUREVIZ_METRICS_LISTEN": layout.metrics,
        "FEATUREVIZ_HTTP_SERVERS": servers("8080", " max_fails=1 fail_timeout=10s"),
        "FEATUREVIZ_GRPC_SERVERS": servers("7070", " max_fails=1 fail_timeout=10s"),
        "FEATUREVIZ_READY_SERVERS": servers("ready", " max_fails=0"),  # a 503 there is an answer
        "FEATUREVIZ_METRICS_SERVERS": servers("8082"),
        "FEATUREVIZ_REPLICA_NAMES": names,
    }


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _spawn(args: list[str], log: str, env: dict | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                start_new_session=True)


def _wait(what: str, check, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} after {timeout:.0f} s")


class Cluster:
    """One cluster's processes and files under state_dir (state.json lists what runs)."""

    def __init__(self, state_dir: str = STATE_DIR, layout: Layout = Layout()):
        self.state_dir, self.layout = state_dir, layout
        self.state = {"replicas": [], "gateway": None}

    def replica_dir(self, i: int) -> str:
        return os.path.join(self.state_dir, f"replica-{i}")

    def _save(self):
        with open(os.path.join(self.state_dir, "state.json"), "w") as f:
            json.dump(self.state, f, indent=1)

    def start_gateway(self, replicas: int, key_file: str, model_store: str, models: list[str] | None = None):
        """Replica configs, readiness checks and the gateway: /ping answers 503 until the
        replicas' models load."""
        for i in range(replicas):
            work = self.replica_dir(i)
            os.makedirs(os.path.join(work, "tmp"), exist_ok=True)
            os.makedirs(os.path.join(work, "logs"), exist_ok=True)
            config = os.path.join(work, "config.properties")
            with open(config, "w") as f:
                f.write(replica_config(i, self.layout, model_store, models))
            ready = f"127.0.0.1:{self.layout.ports(i)['ready']}"
            process = _spawn([sys.executable, os.path.join(GATEWAY, "readiness.py"), "--config", config,
                              "--listen", ready], os.path.join(work, "logs", "readiness.log"))
            self.state["replicas"].append({"name": f"replica-{i}", "dir": work, "readiness_pid": process.pid})
        prefix = os.path.join(self.state_dir, "gateway")
        os.makedirs(prefix, exist_ok=True)
        env = {**os.environ, **gateway_env(self.layout, replicas, key_file, prefix)}
        log = os.path.join(prefix, "gateway.log")
        gateway = _spawn(["sh", os.path.join(GATEWAY, "entrypoint.sh")], log, env)
        self.state["gateway"] = {"pid": gateway.pid, "prefix": prefix}
        self._save()

        def answers():
            if gateway.poll() is not None:
                raise RuntimeError(f"the gateway exited: {open(log).read().strip()}")
            return get(f"http://{self.layout.http}/ping")[0] in (200, 502, 503)
        _wait(f"the gateway does not answer (see {log})", answers, 30, 0.2)
        for i in range(replicas):  # and /ping answers from the replicas' checks, not the gateway's fallback
            url = f"http://127.0.0.1:{self.layout.ports(i)['ready']}/ready"
            _wait(f"replica-{i}'s readiness check does not answer", lambda: get(url)[0] in (200, 503), 30, 0.2)

    def start_replica(self, i: int, model_store: str, cache_dir: str):
        """Replica i's TorchServe, launched without waiting for its models."""
        work = self.replica_dir(i)
        torchserve.launch(os.path.join(work, "config.properties"), workdir=work, model_store=model_store,
                          tmpdir=os.path.join(work, "tmp"), log_dir=os.path.join(work, "logs"),
                          environ={"FEATUREVIZ_CACHE_DIR": cache_dir})

    def start_replicas(self, model_store: str, cache_dir: str):
        """Every replica's TorchServe, launched together (they load their models in parallel)."""
        for i in range(len(self.state["replicas"])):
            self.start_replica(i, model_store, cache_dir)
        self._save()

    def wait_ready(self, timeout: float):
        for i, replica in enumerate(self.state["replicas"]):
            url = f"http://127.0.0.1:{self.layout.ports(i)['ready']}/ready"
            _wait(f"{replica['name']} not ready (see {replica['dir']}/logs)", lambda: get(url)[0] == 200, timeout, 1)
        _wait("the gateway's /ping is not 200", lambda: get(f"http://{self.layout.http}/ping")[0] == 200, 30)

    def torchserve_pid(self, i: int) -> int:
        with open(os.path.join(self.replica_dir(i), "tmp", ".model_server.pid")) as f:
            return int(f.read().strip())

    def stop(self):
        self.state = {"replicas": [], "gateway": None}
        path = os.path.join(self.state_dir, "state.json")
        if not os.path.exists(path):
            return
        with open(path) as f:
            state = json.load(f)
        gateway = state.get("gateway")
        if gateway:
            _kill(gateway["pid"])
        for replica in state["replicas"]:
            _kill(replica["readiness_pid"])
            torchserve.stop(os.path.join(replica["dir"], "tmp"), quiet=True)
        os.remove(path)


def _kill(pid: int):
    """Stops a process started in its own session, with what it started (nginx's workers)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start(replicas: int, key_file: str, model_store: str, cache_dir: str, cluster: Cluster,
          models: list[str] | None = None, timeout: float = 600):
    cluster.stop()
    os.makedirs(cluster.state_dir, exist_ok=True)
    try:
        cluster.start_gateway(replicas, key_file, model_store, models)
        cluster.start_replicas(model_store, cache_dir)
        cluster.wait_ready(timeout)
    except BaseException:
        cluster.stop()
        raise


def add_commands(commands):
    command = commands.add_parser("cluster", help="TorchServe replicas behind the pod's gateway, on this machine")
    command.add_argument("action", choices=["start", "stop"])
    command.add_argument("--replicas", type=int, default=int(os.environ.get("REPLICAS") or 2))
    command.add_argument("--api-key", default=os.environ.get("API_KEY") or None)
    command.add_argument("--cache-dir", default=os.environ.get("FEATUREVIZ_CACHE_DIR")
                         or os.path.join(STATE_DIR, "cache"))
    command.add_argument("--timeout", type=float, default=600)
    command.set_defaults(run=run_command)


def run_command(args):
    cluster = Cluster()
    if args.action == "stop":
        cluster.stop()
        return
    if not 1 <= args.replicas <= 8:
        sys.exit("error: REPLICAS must be between 1 and 8")
    _, key_file = api_key(args.api_key)
    start(args.replicas, key_file, os.path.join(ROOT, "model_store"), args.cache_dir, cluster,
          timeout=args.timeout)
    layout = cluster.layout
    print(f"cluster ready: {args.replicas} TorchServe replicas behind the gateway on http://{layout.http} "
          f"and gRPC {layout.grpc} (metrics http://{layout.metrics}/metrics); shared cache {args.cache_dir}; "
          f"API key in {key_file}: send Authorization: Bearer <key>")
