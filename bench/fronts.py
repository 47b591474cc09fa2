"""The two fronts side by side: `activations` over TorchServe's HTTP (make serve) and over the Open
Inference Protocol's gRPC on the KServe predictor (make serve-kserve), from one archive, on this
machine in one run: each front gets --clients clients that send one request after another for
--seconds in all, in --slices turns that alternate between the fronts (the machine's speed drifts:
both fronts see its drift alike); the report is requests/s and the latency's p50 and p99.

    python -m bench fronts [--clients 4] [--seconds 60] [--slices 6] [--size 224] [--layer 42]

It starts both servers itself, from an archive with seeded random weights (the weights change no
timing), on ports of their own and a temp dir, and stops them at the end; start it under the lock
other server tests take (docs/testing.md). Each request is the same PNG photo with `layer` and
`size`: a TorchServe form, or tritonclient.grpc's BYTES and INT64 tensors.
"""
import os
import tempfile
import threading
import time

import numpy as np
import requests

from serving import ROOT, archive, kserve, torchserve

from .cli import section_parser
from .soak import percentile, photo
from .table import Report

TORCHSERVE_PORTS = {"8080": "18580", "8081": "18581", "8082": "18582", "7070": "17570", "7071": "17571"}
KSERVE_PORTS = (18590, 18591)


def torchserve_client(url: str, key: str, image: bytes, fields: dict):
    session = requests.Session()
    form = {"data": ("photo.png", image, "image/png"), **{k: (None, str(v)) for k, v in fields.items()}}

    def call():
        response = session.post(f"{url}/predictions/activations", files=form, timeout=600,
                                headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
    return call


def oip_grpc_client(address: str, image: bytes, fields: dict):
    import tritonclient.grpc as tgrpc
    client = tgrpc.InferenceServerClient(address)
    inputs = [tgrpc.InferInput("data", [1], "BYTES")]
    inputs[0].set_data_from_numpy(np.array([image], dtype=np.object_))
    for name, value in fields.items():
        inputs.append(tgrpc.InferInput(name, [1], "INT64"))
        inputs[-1].set_data_from_numpy(np.array([value], np.int64))

    def call():
        assert client.infer("activations", inputs, client_timeout=600).as_numpy("activations").size
    return call


def load(make_call, clients: int, seconds: float) -> tuple[list[float], float]:
    """Each client warmed by one call (its connection, the first batch), then all sending one call
    after another for `seconds`: the latencies, and the time from the start to the last answer."""
    latencies, lock, clock = [], threading.Lock(), {}
    started = threading.Barrier(clients, action=lambda: clock.update(start=time.monotonic()))

    def client():
        call = make_call()
        call()
        started.wait()
        while time.monotonic() - clock["start"] < seconds:
            began = time.monotonic()
            call()
            with lock:
                latencies.append(time.monotonic() - began)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.monotonic() - clock["start"]


def processor() -> str:
    """lscpu's model name."""
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")


def main(argv):
    parser = section_parser("fronts", __doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60, help="per front, in all")
    parser.add_argument("--slices", type=int, default=6, help="turns per front, alternating")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--layer", type=int, default=42)
    parser.add_argument("--out", help="append the report to this file too")
    args = parser.parse_args(argv)
    report = Report(args.out)
    image, fields = photo(args.size, 0), {"layer": args.layer, "size": args.size}
    with tempfile.TemporaryDirectory(prefix="featureviz-fronts-") as work:
        store = os.path.join(work, "model_store")
        mar = archive.build("random", "1.0", store)
        config = torchserve.remap(open(os.path.join(ROOT, "config.properties")).read(), TORCHSERVE_PORTS, store)
        with open(os.path.join(work, "config.properties"), "w") as f:
            f.write(config + "\ninitial_worker_port=19500\n")
        tmpdir = os.path.join(work, "tmp")
        os.makedirs(tmpdir)
        try:
            props = torchserve.start(os.path.join(work, "config.properties"), workdir=work, model_store=store,
                                     tmpdir=tmpdir, timeout=900, log_dir=os.path.join(work, "logs"))
            key = torchserve.keys(work)["inference"]
            kserve.start([mar], *KSERVE_PORTS, state_dir=os.path.join(work, "kserve"),
                         log=os.path.join(work, "logs", "kserve.log"), timeout=900)
            fronts = [("TorchServe, HTTP", lambda: torchserve_client(props["inference_address"], key, image, fields)),
                      ("KServe predictor, OIP gRPC", lambda: oip_grpc_client(f"127.0.0.1:{KSERVE_PORTS[1]}", image,
                                                                               fields))]
            report.say(f"`activations` of a {args.size} px PNG at layer {args.layer}, {args.clients} clients for "
                       f"{args.seconds:g} s per front in {args.slices} alternating turns; {processor()}, "
                       f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, load average before "
                       f"{os.getloadavg()[0]:.2f}\n")
            measured = {name: ([], 0.0) for name, _ in fronts}
            for _ in range(args.slices):
                for name, make_call in fronts:
                    latencies, took = load(make_call, args.clients, args.seconds / args.slices)
                    measured[name] = (measured[name][0] + latencies, measured[name][1] + took)
            table = report.table(["front", "requests", "requests/s", "p50 (s)", "p99 (s)"])
            for name, (latencies, took) in measured.items():
                table.row(name, len(latencies), f"{len(latencies) / took:.2f}", f"{percentile(latencies, 0.5):.3f}",
                          f"{percentile(latencies, 0.99):.3f}")
            report.say(f"\nload average after {os.getloadavg()[0]:.2f}\n")
        finally:
            kserve.stop(os.path.join(work, "kserve"))
            torchserve.stop(tmpdir)
