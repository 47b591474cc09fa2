"""python -m kserve_predictor: the featureviz operations on KServe's ModelServer, in the foreground
until SIGTERM or SIGINT (kserve_predictor/__init__.py)."""
import argparse
import logging
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(prog="python -m kserve_predictor", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--archive", action="append",
                        help="a .mar, or a folder of them (a model store); each is a version, the first the default "
                             "(default: model_store/featureviz.mar)")
    parser.add_argument("--host", default="127.0.0.1", help="where REST and gRPC listen (0.0.0.0 in a container)")
    parser.add_argument("--unpack-into", help="the folder to unzip the archives into, removed at the end "
                                              "(default: a new temp dir)")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--grpc-port", type=int, default=8081)
    args = parser.parse_args()
    # kserve.model_server parses sys.argv when it is imported, and its options' defaults come from
    # there (abbreviations allowed): it gets none of ours.
    del sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    import torch
    from featureviz.service.operations import OPERATIONS
    from .archives import archive_paths, unpack
    from .model import OperationModel
    from .server import HostModelServer

    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    unpacked = args.unpack_into or tempfile.mkdtemp(prefix="featureviz-kserve-")
    try:
        paths = archive_paths(args.archive or [os.path.join(ROOT, "model_store", "featureviz.mar")])
        archives = [unpack(path, os.path.join(unpacked, str(i))) for i, path in enumerate(paths)]
        versions = [archive.version for archive in archives]
        if len(set(versions)) != len(versions):
            sys.exit(f"error: two archives of one version ({', '.join(versions)}): {', '.join(paths)}")
        models = [OperationModel(name, archives, device) for name in OPERATIONS]
        HostModelServer(args.host, args.http_port, args.grpc_port).start(models)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    # The server has stopped, its requests answered: exit now, not after the seconds the garbage
    # collector takes over the models at the interpreter's end.
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
