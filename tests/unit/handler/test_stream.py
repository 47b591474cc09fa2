"""visualize with stream: true through the handler: NDJSON events as the work goes, each request of
a batch its own, then `done` with the same PNG as the answer without streaming."""
import base64
import io
import json

import pytest
from PIL import Image
from ts.context import RequestProcessor

from tests.support import TINY
from tests.support.handler import HTTP_HEADERS, make_context, make_handler, streamed

SCHEDULE = {"size": 16, "upscaling_steps": 3, "opt_steps": 2}


@pytest.fixture(scope="module")
def handler(model_dir):
    return make_handler("visualize", model_dir)


def plain(handler, fields):
    return handler.handle([{"body": fields}], _context(handler))[0]


def _context(handler):
    context = make_context(*handler.made_with)
    context.request_processor = [RequestProcessor(dict(HTTP_HEADERS))]
    return context


def test_a_stream_is_a_scale_event_per_scale_then_done_with_the_plain_png(handler, monkeypatch):
    fields = {"layer": 7, "filter": 17, "seed": 5, **SCHEDULE}
    out, statuses, types, sent = streamed(handler, [{**fields, "stream": True}], monkeypatch)
    assert statuses == [200] and types == ["application/x-ndjson"]
    events = [event for _, _, event in sent[0]]
    assert [e["event"] for e in events] == ["scale"] * 3
    assert [e["scale"] for e in events] == [1, 2, 3] and {e["scales"] for e in events} == {3}
    assert [e["side"] for e in events] == [16, 19, 22]  # int(1.2 * side)
    assert all(isinstance(e["activation"], float) and e["elapsed_s"] >= 0 for e in events)
    assert all(t == "application/x-ndjson" and h["X-Model-Version"] == "1.0" for t, h, _ in sent[0])
    done = json.loads(out[0])
    assert out[0].count(b"\n") == 1 and done["event"] == "done" and done["cache"] == "miss"
    png = base64.b64decode(done["png"])
    assert png == plain(handler, fields)
    text = Image.open(io.BytesIO(png)).text
    assert {k: done[k] for k in text} == text  # the PNG's text fields, as the PNG carries them
    assert float(done["activation_final"]) == pytest.approx(events[-1]["activation"], rel=0.5)


def test_a_cache_hit_streams_only_done(handler, monkeypatch):
    fields = {"layer": 7, "filter": 18, **SCHEDULE}
    first = plain(handler, fields)
    out, statuses, _, sent = streamed(handler, [{**fields, "stream": True}], monkeypatch)
    assert statuses == [200] and sent == {}
    done = json.loads(out[0])
    assert done["cache"] == "hit" and base64.b64decode(done["png"]) == first


def test_requests_of_one_batch_each_get_their_own_events(handler, monkeypatch):
    one = {"layer": 7, "filter": 19, "stream": True, **SCHEDULE}
    grid = {"layer": 7, "filters": [20, 21], "stream": True, "preview": True, **SCHEDULE}
    quiet = {"layer": 7, "filter": 22, **SCHEDULE}
    out, statuses, types, sent = streamed(handler, [one, grid, quiet, {"layer": 7, "stream": True}], monkeypatch)
    assert statuses == [200, 200, 200, 400]
    assert types == ["application/x-ndjson", "application/x-ndjson", "image/png", "application/json"]
    assert set(sent) == {0, 1}  # nothing for the plain request, nothing for the refused one
    assert [e["scale"] for _, _, e in sent[0]] == [1, 2, 3] and "filters" not in sent[0][0][2]
    grid_events = [e for _, _, e in sent[1]]
    assert [e["scale"] for e in grid_events] == [1, 2, 3]
    assert all(e["filters"] == [20, 21] and len(e["activations"]) == 2 for e in grid_events)
    assert all((e["group"], e["groups"]) == (1, 1) for e in grid_events)
    thumbnail = Image.open(io.BytesIO(base64.b64decode(grid_events[-1]["previews"][1])))
    assert thumbnail.size == (22, 22)  # at most 64 px: the last scale's side here
    assert json.loads(out[3])["field"] == "filter"
    grid_png = base64.b64decode(json.loads(out[1])["png"])
    assert grid_png == plain(handler, {k: v for k, v in grid.items() if k not in ("stream", "preview")})


def test_a_failure_after_the_stream_began_ends_it_with_an_error_line(handler, monkeypatch):
    from featureviz.service.operations.visualize import operation
    real = operation.render_images

    def fails_after_a_scale(features, requests, precision, on_stage=None, pool_kernel=True):
        def then_fail(*args):
            on_stage(*args)
            raise RuntimeError("a worker error")
        return real(features, requests, precision, then_fail, pool_kernel)

    monkeypatch.setattr(operation, "render_images", fails_after_a_scale)
    out, statuses, types, sent = streamed(handler, [{"layer": 7, "filter": 23, "stream": True, **SCHEDULE}],
                                          monkeypatch)
    assert [e["event"] for _, _, e in sent[0]] == ["scale"]
    assert statuses == [200] and types == ["application/x-ndjson"]
    error = json.loads(out[0])
    assert error["event"] == "error" and error["code"] == 500 and error["type"] == "InternalServerError"


def test_grpc_gets_progress_only_where_grpc_stream_is_on(handler, monkeypatch):
    fields = {"layer": 7, "filter": 24, "stream": True, **SCHEDULE}
    assert handler.grpc_stream is False  # model-config.yaml's default
    out, statuses, types, sent = streamed(handler, [fields], monkeypatch, headers={})
    assert statuses == [200] and sent == {}
    done = json.loads(out[0])
    assert done["event"] == "done" and done["cache"] == "miss"

    monkeypatch.setattr(handler, "grpc_stream", True)
    out, _, _, sent = streamed(handler, [{**fields, "filter": 25}], monkeypatch, headers={})
    assert [e["event"] for _, _, e in sent[0]] == ["scale"] * 3 and json.loads(out[0])["event"] == "done"


@pytest.mark.parametrize("fields, field", [
    ({"filter": 1, "stream": "maybe"}, "stream"),
    ({"filter": 1, "preview": True}, "preview"),
])
def test_bad_stream_fields_are_refused_before_anything_is_sent(handler, monkeypatch, fields, field):
    out, statuses, types, sent = streamed(handler, [{**fields, **TINY}], monkeypatch)
    assert statuses == [400] and sent == {} and json.loads(out[0])["field"] == field


def test_filters_in_several_groups_say_which_group_each_scale_is_of(handler, monkeypatch):
    grid = {"layer": 7, "filters": [30, 31, 32, 33, 34, 35], "stream": True, **SCHEDULE}
    monkeypatch.setattr(handler.service.operation, "batch_images", 4)
    out, statuses, _, sent = streamed(handler, [grid], monkeypatch)
    events = [e for _, _, e in sent[0]]
    assert statuses == [200]
    assert [(e["group"], e["groups"], e["scale"]) for e in events] == \
        [(1, 2, 1), (1, 2, 2), (1, 2, 3), (2, 2, 1), (2, 2, 2), (2, 2, 3)]
    assert [e["filters"] for e in events] == [[30, 31, 32, 33]] * 3 + [[34, 35]] * 3


def test_the_clients_follow_events_to_the_png_and_stop_on_an_error():
    from serving.progress import StreamFailed, follow
    out = io.StringIO()
    png = b"\x89PNG not really"
    events = [{"event": "scale", "scale": i, "scales": 3, "side": 16 + i, "activation": 0.5 * i} for i in (1, 2, 3)]
    got, done = follow(iter(events + [{"event": "done", "png": base64.b64encode(png).decode(), "cache": "miss"}]), out)
    assert (got, done) == (png, {"event": "done", "cache": "miss"})
    assert "3/3" in out.getvalue() and "activation=1.5" in out.getvalue()
    grouped = [{"event": "scale", "scale": i, "scales": 3, "side": 16, "activations": [0.1], "group": g, "groups": 2}
               for g in (1, 2) for i in (1, 2, 3)]
    out = io.StringIO()
    follow(iter(grouped[:4] + [{"event": "done", "png": "", "cache": "miss"}]), out)
    assert "6/6" in out.getvalue() and "3/3" not in out.getvalue()  # both groups in one bar
    with pytest.raises(StreamFailed, match="507 BadRequest: size: too large"):
        follow(iter(events[:1] + [{"event": "error", "code": 507, "type": "BadRequest", "message": "size: too large"}]),
               io.StringIO())
    with pytest.raises(StreamFailed, match="without a done"):
        follow(iter(events), io.StringIO())


class Socket:
    """TorchServe's worker socket: each message sent, with the headers of each request then."""

    def __init__(self, context, n):
        self.context, self.n, self.sent = context, n, []

    def sendall(self, message):
        self.sent.append([dict(self.context.get_response_headers(i)) for i in range(self.n)])


def through_the_backend(handler, bodies, headers):
    """A batch as TorchServe's Python backend runs it: intermediate parts by the real
    send_intermediate_predict_response, the answer encoded by the real create_predict_response.
    -> (headers of each intermediate message, each request's headers on the final answer)."""
    from ts.protocol.otf_message_handler import create_predict_response
    context = make_context(*handler.made_with)
    context.request_processor = [RequestProcessor(dict(headers)) for _ in bodies]
    context.request_ids = {i: f"request-{i}" for i in range(len(bodies))}
    context.cl_socket = Socket(context, len(bodies))
    out = handler.handle([{"body": body} for body in bodies], context)
    create_predict_response(out, context.request_ids, "Prediction success", 200, context)
    return context.cl_socket.sent, [dict(context.get_response_headers(i)) for i in range(len(bodies))]


@pytest.mark.parametrize("grpc_stream", [False, True])
def test_every_grpc_answer_ends_a_stream_with_ts_stream_next_false(handler, monkeypatch, grpc_stream):
    monkeypatch.setattr(handler, "grpc_stream", grpc_stream)
    bodies = [{"layer": 7, "filter": 60 + 2 * grpc_stream, "stream": True, **SCHEDULE},
              {"layer": 7, "filter": 61 + 2 * grpc_stream, **SCHEDULE}, {"layer": 7, "filter": 99999}]
    parts, final = through_the_backend(handler, bodies, headers={})
    assert [h["ts_stream_next"] for h in final] == ["false"] * 3  # the plain and refused ones too
    assert len(parts) == (3 if grpc_stream else 0)  # one part per scale of the streamed request
    assert all(p[0]["ts_stream_next"] == "true" for p in parts)


def test_a_plain_http_answer_has_no_ts_stream_next_and_a_stream_ends_with_false(handler, monkeypatch):
    bodies = [{"layer": 7, "filter": 64, "stream": True, **SCHEDULE}, {"layer": 7, "filter": 65, **SCHEDULE}]
    parts, final = through_the_backend(handler, bodies, headers=HTTP_HEADERS)
    assert len(parts) == 3 and all(p[0]["ts_stream_next"] == "true" for p in parts)
    assert final[0]["ts_stream_next"] == "false" and "ts_stream_next" not in final[1]
