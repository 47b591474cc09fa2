# make serve [WEIGHTS=imagenet|random|/path/to/vgg16_bn.pth] [VERSION=1.0]  |  make stop  |  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WEIGHTS ?= imagenet
VERSION ?= 1.0

.PHONY: venv archive serve stop test clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

archive: venv
	$(BIN)/python scripts/build_archive.py --weights "$(WEIGHTS)" --version "$(VERSION)"

serve: archive
	$(BIN)/python scripts/server.py start

stop: venv
	$(BIN)/python scripts/server.py stop

test: venv
	$(BIN)/python -m pytest tests

clean: stop
	rm -rf model_store/*.mar model_store/*.fingerprint logs key_file.json
