"""The TorchServe handler called as TorchServe calls it, with a real ts.context.Context and no server."""
import json
import os

import ts
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

import featureviz_handler
from featureviz.pictures import to_png
from featureviz.service.operations.visualize.images import render_images
from featureviz_handler import FeatureVizHandler


def make_context(name, model_dir):
    metrics = MetricsCacheYamlImpl(os.path.join(os.path.dirname(ts.__file__), "configs", "metrics.yaml"))
    metrics.initialize_cache()
    manifest = {"model": {"modelName": "featureviz", "serializedFile": "vgg16_bn.pth", "modelVersion": "1.0"}}
    return Context(name, model_dir, manifest, 4, None, "0.12.0", metrics=metrics)


def make_handler(name, model_dir):
    handler = FeatureVizHandler()
    handler.initialize(make_context(name, model_dir))
    handler.made_with = (name, model_dir)  # for call's contexts
    return handler


def lone_png(handler, fields):
    """The PNG the engine makes for a single-image request alone, outside the handler's batch."""
    visualize = handler.service.operation
    request = visualize.parse(fields)
    alone = render_images(visualize.model.features, [request], visualize.precision)[0]
    return to_png(alone.image, visualize.png_text(request, alone))


HTTP_HEADERS = {"url_path": "", "Host": "127.0.0.1:8080"}  # what TorchServe's HTTP frontend adds


def call(handler, requests, headers=HTTP_HEADERS):
    context = make_context(*handler.made_with)
    context.request_processor = [RequestProcessor(dict(headers)) for _ in requests]
    out = handler.handle(requests, context)
    statuses = [context.get_response_status(i)[0] or 200 for i in range(len(requests))]
    types = [context.get_response_content_type(i) for i in range(len(requests))]
    headers = [context.get_response_headers(i) for i in range(len(requests))]
    return out, statuses, types, headers



def streamed(handler, bodies, monkeypatch, headers=HTTP_HEADERS):
    """The handler's answers, and what it sent while working: request index -> [(type, headers, line)]."""
    sent = {}

    def send(ret, req_id_map, message, code, context):
        assert code == 200 and list(req_id_map) == list(ret) and len(ret) == 1
        (idx, data), = ret.items()
        assert req_id_map[idx] == f"request-{idx}" and data.endswith(b"\n") and data.count(b"\n") == 1
        sent.setdefault(idx, []).append((context.get_response_content_type(idx),
                                         dict(context.get_response_headers(idx)), json.loads(data)))

    monkeypatch.setattr(featureviz_handler, "send_intermediate_predict_response", send)
    context = make_context(*handler.made_with)
    context.request_processor = [RequestProcessor(dict(headers)) for _ in bodies]
    context.request_ids = {i: f"request-{i}" for i in range(len(bodies))}
    out = handler.handle([{"body": body} for body in bodies], context)
    statuses = [context.get_response_status(i)[0] or 200 for i in range(len(bodies))]
    types = [context.get_response_content_type(i) for i in range(len(bodies))]
    return out, statuses, types, sent

