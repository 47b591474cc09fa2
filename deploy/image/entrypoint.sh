#!/bin/sh
# The featureviz image's entrypoint, as in TorchServe's images: `serve [torchserve options]` runs
# TorchServe in the foreground (the container ends when it does, so the pod's restart policy
# restarts it) with the image's config and model store, options given after `serve` overriding
# them (KServe's runtime: deploy/kserve/runtime.yaml). `kserve [options]` runs the same operations
# on KServe's model server instead (python -m kserve_predictor: REST 8080, gRPC 8081, on every
# address), from the image's model store unless an --archive is given (KServe's runtime:
# deploy/kserve/predictor-runtime.yaml). Anything else runs as a command.
set -e
if [ "${1:-serve}" = serve ]; then
  [ $# -gt 0 ] && shift
  # The pod's /tmp outlives a restarted container: the copies of the archive the last TorchServe
  # unpacked there (one per model) would add up, restart after restart.
  rm -rf /tmp/models
  exec torchserve --foreground --ncs \
    --ts-config /home/model-server/config.properties --model-store /home/model-server/model-store "$@"
fi
if [ "$1" = kserve ]; then
  shift
  case " $* " in
    *" --archive"*) ;;
    *) set -- --archive /home/model-server/model-store "$@" ;;
  esac
  cd "$APP"
  exec python -m kserve_predictor --host 0.0.0.0 "$@"
fi
exec "$@"
