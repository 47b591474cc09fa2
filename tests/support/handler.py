"""The TorchServe handler called as TorchServe calls it, with a real ts.context.Context and no server."""
import json

from ts.context import RequestProcessor

import featureviz_handler
from bench.in_process import HTTP_HEADERS, call, make_context, make_handler  # noqa: F401 (the tests' names)
from featureviz.pictures import to_png
from featureviz.service.operations.visualize.images import render_images


def lone_png(handler, fields):
    """The PNG the engine makes for a single-image request alone, outside the handler's batch."""
    visualize = handler.service.operation
    request = visualize.parse(fields)
    alone = render_images(visualize.model.features, [request], visualize.precision)[0]
    return to_png(alone.image, visualize.png_text(request, alone))


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

