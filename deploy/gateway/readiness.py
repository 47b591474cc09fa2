"""Readiness of one TorchServe for the gateway's /ping: ready when every registered model has a
worker with its model loaded.

    python3 readiness.py --config /home/model-server/config.properties --listen 127.0.0.1:8079

GET /ready: 200 when ready, 503 otherwise, with {"status": ..., "models": {name: state}}.
GET /live: 200 while TorchServe's management API answers, 503 otherwise.
With --once instead of --listen: look once, print the answer, exit 0 when ready, else 1 (an exec
probe: KServe's runtime, deploy/kserve/runtime.yaml).

TorchServe's own /ping says "Healthy" while workers are still loading their models, so it cannot
tell a pod that may take traffic. This reads the management API (token auth off behind the
gateway), which reports each worker's state. Standard library only: it runs beside TorchServe in
any Python image.
"""
import argparse
import json
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOADED = "READY"


def read_properties(path: str) -> dict:
    props = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                props[key.strip()] = value.strip()
    return props


def registered_models(props: dict) -> list[str]:
    """The models TorchServe loads at start: load_models (name=archive, ...) or a model_snapshot."""
    if props.get("model_snapshot"):
        return sorted(json.loads(props["model_snapshot"])["models"])
    return [entry.split("=", 1)[0] for entry in props.get("load_models", "").split(",") if entry]


def model_state(management: str, model: str, timeout: float) -> str:
    """READY when a worker of the model's default version has loaded it; else what is known."""
    try:
        with urllib.request.urlopen(f"{management}/models/{model}", timeout=timeout) as response:
            described = json.loads(response.read())
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (OSError, ValueError) as error:
        return f"unreachable ({type(error).__name__})"
    states = [w.get("status", "?") for entry in described for w in entry.get("workers", [])]
    return LOADED if LOADED in states else ",".join(states) or "no worker"


class Readiness:
    def __init__(self, management: str, models: list[str], timeout: float = 2, cache_s: float = 1):
        self.management, self.models, self.timeout, self.cache_s = management.rstrip("/"), models, timeout, cache_s
        self._checked, self._result = 0.0, None

    def ready(self) -> tuple[int, dict]:
        # Probes from every kubelet and gateway worker share one look per cache_s.
        if self._result is None or time.monotonic() - self._checked > self.cache_s:
            states = {model: model_state(self.management, model, self.timeout) for model in self.models}
            ok = bool(states) and all(state == LOADED for state in states.values())
            self._result = (200 if ok else 503, {"status": "ready" if ok else "not ready", "models": states})
            self._checked = time.monotonic()
        return self._result

    def live(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"{self.management}/models", timeout=self.timeout):
                return 200, {"status": "alive"}
        except (OSError, ValueError) as error:
            return 503, {"status": "TorchServe's management API does not answer", "error": type(error).__name__}


def serve(readiness: Readiness, host: str, port: int):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            routes = {"/ready": readiness.ready, "/live": readiness.live}
            status, body = routes[self.path]() if self.path in routes else (404, {"status": "not found"})
            data = json.dumps(body).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer((host, port), Handler).serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="TorchServe's config.properties")
    parser.add_argument("--listen", default="127.0.0.1:8079")
    parser.add_argument("--once", action="store_true", help="check once; exit 0 when ready")
    args = parser.parse_args()
    props = read_properties(args.config)
    readiness = Readiness(props.get("management_address", "http://127.0.0.1:8081"), registered_models(props))
    if args.once:
        status, body = readiness.ready()
        print(json.dumps(body))
        raise SystemExit(0 if status == 200 else 1)
    host, port = args.listen.rsplit(":", 1)
    serve(readiness, host, int(port))


if __name__ == "__main__":
    main()
