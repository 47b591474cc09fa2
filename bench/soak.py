"""A soak of the cluster of `make serve-cluster`: clients mixing every operation through the gateway,
one replica's TorchServe killed and restarted on the way.

    make serve-cluster REPLICAS=2 WEIGHTS=random
    python -m bench soak --clients 8 --minutes 30 --kill-at 3 --settled-at 10
    make stop

Each client sends, one after another, a random mix of every operation over HTTP (visualize plain
and streamed, activations, deconv, saliency, gradcam, occlusion, layers, filters) and of visualize
over gRPC (Predictions, and StreamPredictions with and without `stream`). At --kill-at minutes the
TorchServe of replica --kill (its frontend and workers) is killed, then started again as
serving/cluster.py starts it. The report: answers by status, latency p50/p99 by operation, each
worker's resident memory at its start (the killed replica's new workers: once they are ready), at
--settled-at minutes and at the end, and the failures: those in flight on the killed replica when
it died, and any other (which should be none).
"""
import io
import json
import os
import random
import threading
import time
from dataclasses import dataclass

import grpc
import psutil
import requests
from PIL import Image

from serving import ROOT, torchserve
from serving.client import inference_key, predict, stream_predict
from serving.cluster import KEY_FILE, STATE_DIR, Cluster

from .cli import section_parser
from .table import markdown

SMALL_VISUALIZE = {"layer": 7, "size": 16, "upscaling_steps": 3, "opt_steps": 4}
MODELS = ["visualize", "activations", "deconv", "saliency", "gradcam", "occlusion", "layers", "filters"]


def photo(side: int, seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (side, side), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(8):
        x, y = rng.randrange(side), rng.randrange(side)
        image.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, min(side, x + side // 3), min(side, y + side // 3)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass
class Outcome:
    operation: str
    status: str  # an HTTP status, a gRPC status name, or the exception's name
    started: float
    ended: float
    served_by: str = ""


class Soak:
    def __init__(self, http: str, grpc_address: str, key: str):
        self.http, self.grpc, self.key = http, grpc_address, key
        self.auth = {"Authorization": f"Bearer {key}"}
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()

    def record(self, outcome: Outcome):
        with self.lock:
            self.outcomes.append(outcome)

    def one(self, rng: random.Random):
        """One request of a random operation: (operation, status, served by)."""
        kind = rng.choice(["visualize", "visualize-stream", "activations", "deconv", "saliency", "gradcam",
                           "occlusion", "layers", "filters", "grpc-visualize", "grpc-stream", "grpc-stream-plain"])
        seed = rng.randrange(1 << 30)
        visualize = {**SMALL_VISUALIZE, "filter": rng.randrange(64), "seed": seed}
        if kind.startswith("grpc"):
            inputs = {k: str(v) for k, v in visualize.items()}
            try:
                if kind == "grpc-visualize":
                    ok = predict(self.grpc, self.key, "visualize", inputs, timeout=600).startswith(b"\x89PNG")
                else:
                    if kind == "grpc-stream":
                        inputs["stream"] = "true"
                    parts = list(stream_predict(self.grpc, self.key, "visualize", inputs, timeout=600))
                    ok = parts and (json.loads(parts[-1])["event"] == "done" if kind == "grpc-stream"
                                    else parts[-1].startswith(b"\x89PNG"))
                return kind, "OK" if ok else "OK-but-wrong", ""
            except grpc.RpcError as error:
                return kind, error.code().name, ""
        url = f"{self.http}/predictions/{kind.removesuffix('-stream')}"
        image = {"data": ("x.png", photo(64, seed), "image/png"), "size": (None, "48")}
        if kind == "visualize":
            response = requests.post(url, json=visualize, headers=self.auth, timeout=600)
        elif kind == "visualize-stream":
            with requests.post(url, json={**visualize, "stream": True}, headers=self.auth, stream=True,
                               timeout=600) as response:
                lines = [json.loads(line) for line in response.iter_lines() if line]
                if response.status_code == 200 and (not lines or lines[-1]["event"] != "done"):
                    return kind, "stream-broken", response.headers.get("X-Served-By", "")
        elif kind == "activations":
            response = requests.post(url, files={**image, "layer": (None, str(rng.choice([14, 22, 32, 42])))},
                                     headers=self.auth, timeout=600)
        elif kind == "occlusion":
            response = requests.post(url, files={**image, "window": (None, "24"), "stride": (None, "12")},
                                     headers=self.auth, timeout=600)
        elif kind in ("deconv", "saliency", "gradcam"):
            response = requests.post(url, files=image, headers=self.auth, timeout=600)
        elif kind == "layers":
            response = requests.post(url, json={"output": "json"}, headers=self.auth, timeout=600)
        else:
            response = requests.post(url, json={"layer": rng.choice([0, 3, 7, 10])}, headers=self.auth, timeout=600)
        return kind, str(response.status_code), response.headers.get("X-Served-By", "")

    def client(self, index: int, until: float):
        rng = random.Random(index)
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                kind, status, served_by = self.one(rng)
            except Exception as error:  # a connection the gateway or a replica dropped
                kind, status, served_by = "?", type(error).__name__, ""
            self.record(Outcome(kind, status, started, time.monotonic(), served_by))


def workers(cluster: Cluster, replicas: int) -> dict:
    """(replica, model) -> (pid, resident MB) of its worker."""
    out = {}
    for i in range(replicas):
        management = f"http://127.0.0.1:{cluster.layout.ports(i)['8081']}"
        for model in MODELS:
            try:
                body = json.loads(torchserve.call(f"{management}/models/{model}", timeout=10))
                for entry in body:
                    for worker in entry["workers"]:
                        pid = int(worker["pid"])
                        out[(i, model)] = (pid, psutil.Process(pid).memory_info().rss / 2**20)
            except (OSError, ValueError, KeyError, psutil.Error):
                out[(i, model)] = (None, None)
    return out


def kill_replica(cluster: Cluster, i: int) -> float:
    frontend = psutil.Process(cluster.torchserve_pid(i))
    doomed = [frontend, *frontend.children(recursive=True)]
    for process in doomed:
        process.kill()
    killed = time.monotonic()
    psutil.wait_procs(doomed, timeout=30)
    return killed


def restart_replica(cluster: Cluster, i: int, model_store: str, cache_dir: str) -> float:
    """Replica i started again as the cluster starts it; returns when its readiness check says ready."""
    cluster.start_replica(i, model_store, cache_dir)
    url = f"http://127.0.0.1:{cluster.layout.ports(i)['ready']}/ready"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return time.monotonic()
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"replica-{i} not ready 900 s after its restart")


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def report(soak: Soak, start: float, killed: float | None, ready_again: float | None, before: dict, settled: dict,
           after: dict, replica: int, args) -> str:
    lines = [f"{args.clients} clients, {args.minutes:g} min, replica-{replica}'s TorchServe killed at "
             f"{(killed - start) / 60:.2f} min" + (f", ready again at {(ready_again - start) / 60:.2f} min"
                                                   if ready_again else ", not restarted")]
    outcomes = soak.outcomes
    by_status = {}
    for o in outcomes:
        by_status[o.status] = by_status.get(o.status, 0) + 1
    lines.append(f"answers: {len(outcomes)}; by status: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
    ok = [o for o in outcomes if o.status in ("200", "OK")]
    lines.append(f"latency of the successful answers: p50 {percentile([o.ended - o.started for o in ok], 0.5):.2f} s, "
                 f"p99 {percentile([o.ended - o.started for o in ok], 0.99):.2f} s")
    lines.append("\nby operation:\n")
    latencies = {kind: [o.ended - o.started for o in ok if o.operation == kind]
                 for kind in sorted({o.operation for o in ok})}
    lines.append(markdown(["operation", "answers", "p50 (s)", "p99 (s)"],
                          [(kind, len(t), f"{percentile(t, 0.5):.2f}", f"{percentile(t, 0.99):.2f}")
                           for kind, t in latencies.items()]))
    failed = [o for o in outcomes if o.status not in ("200", "OK")]
    in_flight = [o for o in failed if killed is not None and o.started <= killed <= o.ended]
    other = [o for o in failed if o not in in_flight]
    at_kill = [o for o in outcomes if killed is not None and o.started <= killed <= o.ended]
    lines.append(f"in flight when the replica died: {len(at_kill)} requests, of which {len(in_flight)} failed "
                 f"({', '.join(f'{o.operation} {o.status}' for o in in_flight) or 'none'})")
    lines.append(f"failures not in flight at the kill: {len(other)}"
                 + (" (" + ", ".join(f"{o.operation} {o.status} at {(o.started - start) / 60:.2f} min"
                                     for o in other[:20]) + ")" if other else ""))
    lines.append("\nworker resident memory, from each worker's start (the killed replica's new workers: once "
                 "ready):\n")
    rows = []
    for key in sorted(before):
        (pid0, rss0), (_, rss10), (pid1, rss1) = (found.get(key, (None, None)) for found in (before, settled, after))
        rows.append((f"replica-{key[0]}", key[1], f"{rss0 or 0:.0f}", f"{rss10 or 0:.0f}", f"{rss1 or 0:.0f}",
                     f"{(rss1 or 0) - (rss10 or 0):+.0f}", f"{(rss1 or 0) - (rss0 or 0):+.0f}",
                     "same process" if pid0 == pid1 else f"new process {pid1}"))
    lines.append(markdown(["replica", "worker", "start (MB)", f"at {args.settled_at:g} min (MB)", "end (MB)",
                           f"since {args.settled_at:g} min", "since start", "process"], rows))
    return "\n".join(lines)


def main(argv=None):
    parser = section_parser("soak", __doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--kill-at", type=float, default=3, help="minutes")
    parser.add_argument("--settled-at", type=float, default=10, help="minutes: the memory's middle measurement")
    parser.add_argument("--kill", type=int, default=1, help="the replica to kill")
    parser.add_argument("--replicas", type=int, default=int(os.environ.get("REPLICAS") or 2))
    parser.add_argument("--key-file", default=KEY_FILE)
    parser.add_argument("--cache-dir", default=os.environ.get("FEATUREVIZ_CACHE_DIR")
                        or os.path.join(STATE_DIR, "cache"), help="as given to `python -m serving cluster start`")
    args = parser.parse_args(argv)
    cluster = Cluster()
    soak = Soak(f"http://{cluster.layout.http}", cluster.layout.grpc, inference_key(args.key_file))
    before = workers(cluster, args.replicas)
    start = time.monotonic()
    until = start + args.minutes * 60
    threads = [threading.Thread(target=soak.client, args=(i, until), daemon=True) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start + args.kill_at * 60 - time.monotonic()))
    replica_before = {k: v for k, v in workers(cluster, args.replicas).items() if k[0] == args.kill}
    killed = kill_replica(cluster, args.kill)
    print(f"killed replica-{args.kill} at {(killed - start) / 60:.2f} min", flush=True)
    ready_again = restart_replica(cluster, args.kill, os.path.join(ROOT, "model_store"), args.cache_dir)
    print(f"replica-{args.kill} ready again at {(ready_again - start) / 60:.2f} min", flush=True)
    before.update({k: v for k, v in workers(cluster, args.replicas).items() if k[0] == args.kill})  # their start
    time.sleep(max(0.0, start + args.settled_at * 60 - time.monotonic()))
    settled = workers(cluster, args.replicas)
    for thread in threads:
        thread.join(timeout=max(0.0, until - time.monotonic()) + 900)
    after = workers(cluster, args.replicas)
    print(report(soak, start, killed, ready_again, before, settled, after, args.kill, args))
    print("killed replica's workers just before the kill, MB: "
          + ", ".join(f"{k[1]} {v[1]:.0f}" for k, v in sorted(replica_before.items()) if v[1] is not None))

