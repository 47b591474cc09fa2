# featureviz on TorchServe's own image. Build:   docker build --build-arg FLAVOR=gpu -t featureviz .
# Its default config is the pod's (deploy/config.properties): TorchServe on loopback with token auth
# off, for the gateway beside it (deploy/k8s, `make serve-cluster`). To run the image alone, mount a
# config bound to all interfaces with token auth on (config.properties with 0.0.0.0 addresses):
#   docker run --gpus all -p 8080-8082:8080-8082 -p 7070-7071:7070-7071 \
#     -v $PWD/model_store:/home/model-server/model-store \
#     -v $PWD/my-config.properties:/home/model-server/config.properties featureviz
ARG FLAVOR=gpu
ARG TORCHSERVE_VERSION=0.12.0
FROM pytorch/torchserve:${TORCHSERVE_VERSION}-${FLAVOR}

# The handler's own needs beside the image's torch, torchvision and torchserve.
USER root
RUN python -m pip install --no-cache-dir pyyaml==6.0.3 pillow==13.0.0 numpy==2.4.6 captum==0.9.0 matplotlib==3.11.2
# A C compiler: a CPU worker builds the engine's max-pool + ReLU kernel with it on first use
# (featureviz/model/native/); without one it runs PyTorch's slower ops instead.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
USER model-server

# The pod's config (loopback, behind the gateway); a mounted one replaces it.
COPY --chown=model-server:model-server deploy/config.properties /home/model-server/config.properties
ENV FEATUREVIZ_CACHE_DIR=/home/model-server/cache
EXPOSE 8080 8081 8082 7070 7071
# The image's entrypoint (dockerd-entrypoint.sh) starts TorchServe with that config and model store.
CMD ["serve"]
