"""python -m serving COMMAND: the service's lifecycle on this machine (the Makefile's targets call it)."""
import argparse

from serving import ab, archive, cluster, grpc_stubs, hed_weights, image, java, kserve, pod, torchserve


def stop_everything(args):
    """What `make stop` stops: the pod, the A/B proxy, the cluster, the plain TorchServe and the
    KServe predictor."""
    pod.stop()
    ab.stop()
    cluster.Cluster().stop()
    torchserve.stop()
    kserve.stop()


def main():
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.split(":", 1)[1].strip())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (archive, torchserve, kserve, ab, cluster, image, pod, hed_weights, grpc_stubs):
        module.add_commands(commands)
    commands.add_parser("stop", help="stop the pod, the A/B proxy, the cluster, TorchServe and the KServe "
                                     "predictor").set_defaults(
        run=stop_everything)
    commands.add_parser("java", help="print a JAVA_HOME with Java 17+").set_defaults(
        run=lambda args: print(java.java_home()))
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
