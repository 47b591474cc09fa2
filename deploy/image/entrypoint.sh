#!/bin/sh
# The featureviz image's entrypoint, as in TorchServe's images: `serve [torchserve options]` runs
# TorchServe in the foreground (the container ends when it does, so the pod's restart policy
# restarts it) with the image's config and model store, options given after `serve` overriding
# them (KServe's runtime: deploy/kserve/runtime.yaml); anything else runs as a command.
set -e
if [ "${1:-serve}" = serve ]; then
  [ $# -gt 0 ] && shift
  exec torchserve --foreground --ncs \
    --ts-config /home/model-server/config.properties --model-store /home/model-server/model-store "$@"
fi
exec "$@"
