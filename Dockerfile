# featureviz on TorchServe's own image. Build:   docker build --build-arg FLAVOR=gpu -t featureviz .
# Run: the model store and config are mounted where TorchServe's image looks for them:
#   docker run --gpus all -p 8080-8082:8080-8082 -p 7070-7071:7070-7071 \
#     -v $PWD/model_store:/home/model-server/model-store \
#     -v $PWD/deploy/config.properties:/home/model-server/config.properties featureviz
ARG FLAVOR=gpu
ARG TORCHSERVE_VERSION=0.12.0
FROM pytorch/torchserve:${TORCHSERVE_VERSION}-${FLAVOR}

# The handler's own needs beside the image's torch, torchvision and torchserve.
USER root
RUN python -m pip install --no-cache-dir pyyaml==6.0.3 pillow==13.0.0 numpy==2.4.6 captum==0.9.0 matplotlib==3.11.2
USER model-server

# A default config for containers (all interfaces); a mounted one replaces it.
COPY --chown=model-server:model-server deploy/config.properties /home/model-server/config.properties
ENV FEATUREVIZ_CACHE_DIR=/home/model-server/cache
EXPOSE 8080 8081 8082 7070 7071
# The image's entrypoint (dockerd-entrypoint.sh) starts TorchServe with that config and model store.
CMD ["serve"]
