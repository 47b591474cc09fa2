"""Start, wait for, and stop the KServe predictor (kserve_predictor/): the featureviz operations on
KServe's ModelServer, over the Open Inference Protocol, from the archive `make serve` serves.

    python -m serving kserve start [--archive model_store/featureviz.mar] [--http-port 8280] [--grpc-port 8281]
    python -m serving kserve stop

`start` runs it in the background and returns once REST /v2/health/ready and gRPC ServerReady
answer. It listens on 127.0.0.1 alone and takes no key, as KServe's own server (in a cluster the
gateway or Istio authenticates); it runs beside TorchServe on ports of its own. Its pid file is in
build/kserve/ (a separate folder gives a separate server: the tests run one beside `make serve-kserve`).
"""
import json
import os
import shutil
import sys
import time

from serving import ROOT
from serving.cluster import _kill, _spawn, get

STATE_DIR = os.path.join(ROOT, "build", "kserve")
HOST = "127.0.0.1"


def pid_file(state_dir: str) -> str:
    return os.path.join(state_dir, "predictor.pid")


def unpacked_dir(state_dir: str) -> str:
    """Where the predictor unzips its archives (the weights, half a GB each): removed by stop()
    even where the predictor could not remove it itself."""
    return os.path.join(state_dir, "archives")


def grpc_ready(address: str) -> bool:
    """OIP's ServerReady, without stubs (importing kserve's here would parse this process's argv)."""
    import grpc
    with grpc.insecure_channel(address) as channel:
        try:
            reply = channel.unary_unary("/inference.GRPCInferenceService/ServerReady")(b"", timeout=2)
        except grpc.RpcError:
            return False
    return reply == b"\x08\x01"  # ServerReadyResponse {ready: true}


def ready(http_port: int, grpc_port: int) -> bool:
    return get(f"http://{HOST}:{http_port}/v2/health/ready", timeout=2)[0] == 200 and \
        grpc_ready(f"{HOST}:{grpc_port}")


def start(archives: list[str], http_port: int = 8280, grpc_port: int = 8281, state_dir: str = STATE_DIR,
          log: str | None = None, environ: dict | None = None, timeout: float = 300) -> int:
    """Starts the predictor (replacing the one of `state_dir`) and returns its pid once it answers."""
    stop(state_dir)
    os.makedirs(state_dir, exist_ok=True)
    log = log or os.path.join(ROOT, "logs", "kserve.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    command = [sys.executable, "-m", "kserve_predictor", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
               "--unpack-into", unpacked_dir(state_dir)]
    for archive in archives:
        command += ["--archive", archive]
    process = _spawn(command, log, env={**os.environ, **(environ or {}), "PYTHONPATH": ROOT})
    with open(pid_file(state_dir), "w") as f:
        f.write(str(process.pid))
    deadline = time.monotonic() + timeout
    while not ready(http_port, grpc_port):
        if process.poll() is not None:
            raise RuntimeError(f"the KServe predictor exited ({process.returncode}) while starting; see {log}")
        if time.monotonic() > deadline:
            stop(state_dir)
            raise TimeoutError(f"the KServe predictor did not answer within {timeout:.0f} s; see {log}")
        time.sleep(0.5)
    return process.pid


def stop(state_dir: str = STATE_DIR):
    """Stops the predictor of `state_dir`, if one runs (SIGTERM: requests in flight finish first)."""
    try:
        with open(pid_file(state_dir)) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return
    _kill(pid)
    try:  # reaped here where this process started it
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    shutil.rmtree(unpacked_dir(state_dir), ignore_errors=True)
    os.remove(pid_file(state_dir))


def add_commands(commands):
    command = commands.add_parser("kserve", help="the KServe predictor (Open Inference Protocol) on 127.0.0.1")
    command.add_argument("action", choices=["start", "stop"])
    command.add_argument("--archive", action="append", help="a .mar or a model store; each a version "
                                                            "(default: model_store/featureviz.mar)")
    command.add_argument("--http-port", type=int, default=8280)
    command.add_argument("--grpc-port", type=int, default=8281)
    command.add_argument("--timeout", type=float, default=300)
    command.set_defaults(run=run_command)


def run_command(args):
    if args.action == "stop":
        stop()
        return
    archives = args.archive or [os.path.join(ROOT, "model_store", "featureviz.mar")]
    began = time.monotonic()
    pid = start(archives, args.http_port, args.grpc_port, timeout=args.timeout)
    models = json.loads(get(f"http://{HOST}:{args.http_port}/v2/models")[1])["models"]
    print(f"KServe predictor ready after {time.monotonic() - began:.0f} s (pid {pid}): REST http://{HOST}:"
          f"{args.http_port} (v1, v2), gRPC {HOST}:{args.grpc_port}; models {', '.join(models)}; no key "
          f"(loopback only); log {os.path.join(ROOT, 'logs', 'kserve.log')}")
