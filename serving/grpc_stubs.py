"""Python stubs for TorchServe's own gRPC API, generated from the .proto files inside its jar.

TorchServe's pip package ships no .proto; `ts/frontend/model-server.jar` holds inference.proto,
management.proto and google/rpc/status.proto. They are extracted and compiled with grpcio-tools
into build/grpc/ on first use; nothing generated is committed. Generated code checks the protobuf
runtime it runs on, so the stubs record the grpcio-tools version that made them (build/grpc/GENERATOR)
and are made again when the installed one differs (a pin changed: requirements.txt).

    python -m serving grpc-stubs          # (re)generate
    from serving.grpc_stubs import load; inference_pb2, inference_pb2_grpc = load("inference")
"""
import importlib
import os
import sys
import zipfile

from serving import ROOT

OUT = os.path.join(ROOT, "build", "grpc")
PROTOS = ("inference.proto", "management.proto", "google/rpc/status.proto")
GENERATOR = "GENERATOR"  # the file in OUT naming the grpcio-tools version that made the stubs


def jar_path() -> str:
    import ts
    return os.path.join(os.path.dirname(ts.__file__), "frontend", "model-server.jar")


def generator_version() -> str:
    from importlib.metadata import version
    return f"grpcio-tools {version('grpcio-tools')}"


def generate(out: str = OUT) -> str:
    from grpc_tools import protoc
    import grpc_tools
    protos = os.path.join(out, "protos")
    with zipfile.ZipFile(jar_path()) as jar:
        for name in PROTOS:
            target = os.path.join(protos, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(jar.read(name))
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{protos}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + list(PROTOS)) != 0:
        raise RuntimeError("protoc failed on TorchServe's protos")
    with open(os.path.join(out, GENERATOR), "w") as f:
        f.write(generator_version())
    return out


def current(out: str = OUT) -> bool:
    """Whether the stubs in `out` exist and were made by the installed grpcio-tools."""
    try:
        with open(os.path.join(out, GENERATOR)) as f:
            return f.read() == generator_version()
    except OSError:
        return False


def load(service: str):
    """(messages, stubs) modules for 'inference' or 'management', generating them if missing or
    made by another grpcio-tools."""
    if not os.path.exists(os.path.join(OUT, f"{service}_pb2_grpc.py")) or not current(OUT):
        generate(OUT)
    if OUT not in sys.path:
        sys.path.insert(0, OUT)
    return importlib.import_module(f"{service}_pb2"), importlib.import_module(f"{service}_pb2_grpc")


def add_commands(commands):
    command = commands.add_parser("grpc-stubs", help="(re)generate TorchServe's gRPC stubs into build/grpc")
    command.set_defaults(run=lambda args: print(f"generated stubs in {generate()}"))
