"""A model archive as TorchServe reads it: model_store/featureviz.mar unzipped into a temp dir, its
weights (weights.json and the state_dict file its manifest names), its version and its
model-config.yaml (batching, and the handler's settings, which the services here share)."""
import json
import os
import zipfile
from dataclasses import dataclass

import yaml

from featureviz.model.weights import load_state_dict

WEIGHTS_NOTE = "weights.json"  # what the archive says of its weights (serving/archive.py)


@dataclass(frozen=True)
class Archive:
    version: str
    weights: dict  # weights.json: source, trained, sha256...
    state_dict: dict
    config: dict  # model-config.yaml: batchSize, maxBatchDelay, handler: {settings}


def archive_paths(paths: list[str]) -> list[str]:
    """Each path as given, a folder as the .mar files in it (a model store)."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            found += sorted(os.path.join(path, name) for name in os.listdir(path) if name.endswith(".mar"))
        else:
            found.append(path)
    if not found:
        raise FileNotFoundError(f"no .mar archive in {', '.join(paths)}; build one: make archive")
    return found


def unpack(path: str, into: str) -> Archive:
    """The archive at `path`: its weights, config and manifest unzipped into the folder `into`
    (which must outlive the state_dict: its tensors map the weights file). The engine it carries
    is not used: the predictor runs this checkout's."""
    with zipfile.ZipFile(path) as mar:
        model = json.loads(mar.read("MAR-INF/MANIFEST.json"))["model"]
        config_name = model.get("configFile", "model-config.yaml")
        for name in (WEIGHTS_NOTE, config_name, model["serializedFile"]):
            mar.extract(name, into)
    with open(os.path.join(into, WEIGHTS_NOTE)) as f:
        weights = json.load(f)
    with open(os.path.join(into, config_name)) as f:
        config = yaml.safe_load(f) or {}
    state_dict = load_state_dict(os.path.join(into, model["serializedFile"]))
    return Archive(model.get("modelVersion", ""), weights, state_dict, config)
