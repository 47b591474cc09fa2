"""The TorchServe handler called as TorchServe calls it, in this process: a real ts Context, no
server, no Java. What the GPU check times, and what the handler's tests call."""
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HTTP_HEADERS = {"url_path": "", "Host": "127.0.0.1:8080"}  # what TorchServe's HTTP frontend adds


def model_dir(folder: str, state_dict: dict, about: dict) -> str:
    """`folder` as TorchServe unpacks an archive: the state_dict and what it is (weights.json)."""
    os.makedirs(folder, exist_ok=True)
    torch.save(state_dict, os.path.join(folder, "vgg16_bn.pth"))
    with open(os.path.join(folder, "weights.json"), "w") as f:
        json.dump({"sha256": "0" * 64, **about}, f)
    return folder


def make_context(name: str, folder: str, gpu_id: int | None = None):
    import ts
    from ts.context import Context
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
    metrics = MetricsCacheYamlImpl(os.path.join(os.path.dirname(ts.__file__), "configs", "metrics.yaml"))
    metrics.initialize_cache()
    manifest = {"model": {"modelName": "featureviz", "serializedFile": "vgg16_bn.pth", "modelVersion": "1.0"}}
    return Context(name, folder, manifest, 4, gpu_id, "0.12.0", metrics=metrics)


def make_handler(name: str, folder: str, gpu_id: int | None = None):
    sys.path.insert(0, os.path.join(ROOT, "handler"))
    from featureviz_handler import FeatureVizHandler
    handler = FeatureVizHandler()
    handler.initialize(make_context(name, folder, gpu_id))
    handler.made_with = (name, folder, gpu_id)  # for call's contexts
    return handler


def call(handler, requests: list, headers: dict = HTTP_HEADERS):
    """(bodies, statuses, content types, headers) of one batch, as TorchServe hands it over."""
    from ts.context import RequestProcessor
    context = make_context(*handler.made_with)
    context.request_processor = [RequestProcessor(dict(headers)) for _ in requests]
    context.request_ids = {i: f"request-{i}" for i in range(len(requests))}
    out = handler.handle(requests, context)
    statuses = [context.get_response_status(i)[0] or 200 for i in range(len(requests))]
    types = [context.get_response_content_type(i) for i in range(len(requests))]
    found = [context.get_response_headers(i) for i in range(len(requests))]
    return out, statuses, types, found
