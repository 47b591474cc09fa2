"""A layer in one request: `filters` as a range or "all", within the deployment's compute limit;
the grid or a zip of one PNG per filter; each image cached; and, with a group shape G > 1, each
image optimized in groups of exactly G whatever its neighbours."""
import base64
import email.policy
import http.server
import io
import json
import os
import threading
import zipfile
from email.parser import BytesParser

import pytest
from PIL import Image

from featureviz.service.operations.visualize.filter_sets import FiltersLimit
from featureviz.service.operations.visualize.request import parse_visualize
from featureviz.service.operations.visualize.operation import Visualize
from featureviz.service.refusals import BadRequest
from featureviz.service.settings import Settings
from tests.support import TINY
from tests.support.gallery import run_gallery
from tests.support.handler import call, lone_png, make_handler, streamed


@pytest.fixture
def handler_with(model_dir, monkeypatch, tmp_path):
    """A visualize handler with these FEATUREVIZ_* settings, strict fp32 and a fresh cache."""
    def make(cache="cache", **settings):
        monkeypatch.setenv("FEATUREVIZ_PRECISION", "fp32")
        monkeypatch.setenv("FEATUREVIZ_CACHE_DIR", str(tmp_path / cache))
        for name, value in settings.items():
            monkeypatch.setenv(f"FEATUREVIZ_{name.upper()}", str(value))
        return make_handler("visualize", model_dir)
    return make


def post(handler, fields):
    out, statuses, types, headers = call(handler, [{"body": fields}])
    return out[0], statuses[0], types[0], headers[0]


def pngs_in(archive: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return {name: z.read(name) for name in z.namelist()}


@pytest.mark.parametrize("raw, layer, expected", [
    ("all", 7, tuple(range(128))), ("0-3", 40, (0, 1, 2, 3)), (b" 60 - 63", 0, (60, 61, 62, 63)),
    ("ALL", 0, tuple(range(64))), ("5-5", 7, (5,)),
])
def test_filters_as_a_range_or_all(engine, raw, layer, expected):
    limit = FiltersLimit(images=512, work=1024)
    request = parse_visualize({"layer": layer, "filters": raw, **TINY}, engine, limit)
    assert request.filters == expected
    assert [single.filter for single in request.singles()] == list(expected)


@pytest.mark.parametrize("fields, words", [
    ({"layer": 40, "filters": "all"}, "'all' is 512 filters of layer 40; this deployment's compute limit takes at "
                                      "most 64"),
    ({"layer": 7, "filters": "0-127"}, "'0-127' is 128 filters of layer 7"),
    ({"layer": 7, "filters": "0-128"}, "128 is out of range; layer 7 has 128 channels"),
    ({"layer": 7, "filters": "0-99999999999"}, "out of range"),
    ({"layer": 7, "filters": "9-2"}, "an empty range"),
    ({"layer": 7, "filters": "2-"}, "a range \"0-63\" or \"all\""),
    ({"layer": 7, "filters": "0-8", "size": 56, "upscaling_steps": 12, "opt_steps": 20},
     "send fewer filters"),  # 9 default images' work
    ({"layer": 7, "filter": 3, "output": "zip"}, "send filters"),
    ({"layer": 7, "filters": [3], "output": "tar"}, "one of png, zip"),
])
def test_a_cpu_deployments_default_limit_refuses_a_layer_and_says_why(engine, fields, words):
    with pytest.raises(BadRequest) as caught:
        parse_visualize({**TINY, **fields}, engine)
    field = "output" if "output" in fields else "filters"
    assert caught.value.status == 400 and caught.value.field == field and words in caught.value.message


def test_the_limit_scales_with_the_device_and_is_a_setting(monkeypatch):
    assert FiltersLimit.for_device("cpu") == FiltersLimit(64, 8)
    assert FiltersLimit.for_device("cuda") == FiltersLimit(512, 1024)
    assert FiltersLimit.for_device("cpu", 128, 2.5) == FiltersLimit(128, 2.5)
    own = {setting.name: setting for setting in Visualize.settings}
    for bad in ({"max_filters": "0"}, {"max_filters_work": "lots"}, {"group_size": "0"}, {"group_size": "2.5"}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"{name} \\(or FEATUREVIZ_{name.upper()}\\) must be"):
            Settings(bad, environ={})[own[name]]
    settings = Settings({"group_size": 4}, environ={"FEATUREVIZ_MAX_FILTERS": "300"})
    assert [settings[own[name]] for name in ("group_size", "max_filters", "max_filters_work")] == [4, 300, "auto"]


@pytest.mark.slow
def test_a_handler_refuses_all_of_a_deep_layer_by_default_and_serves_a_layer_with_a_raised_limit(handler_with):
    default = handler_with()
    assert default.service.operation.group_size == 1 and default.service.operation.filters_limit == FiltersLimit(64, 8)
    body, status, kind, _ = post(default, {"layer": 40, "filters": "all", **TINY})
    refusal = json.loads(body)
    assert (status, kind, refusal["field"]) == (400, "application/json", "filters")
    assert "512 filters" in refusal["message"] and "compute limit" in refusal["message"]

    raised = handler_with(max_filters=128)
    least = {"size": 16, "upscaling_steps": 1, "opt_steps": 1}
    body, status, kind, headers = post(raised, {"layer": 7, "filters": "all", **least})
    assert (status, kind, headers["X-Cache"]) == (200, "image/png", "miss")
    grid = Image.open(io.BytesIO(body))
    assert grid.size == (12 * 16, 11 * (16 + 14))  # 128 images of 16 px, 12 a row, each under its label
    assert grid.text["filters"] == ",".join(map(str, range(128)))
    # Every image was cached: asking again, for a range of it, or for one filter, is a hit.
    for fields in ({"filters": "all"}, {"filters": "3-9", "output": "zip"}, {"filters": [77]}, {"filter": 127}):
        again, status, _, headers = post(raised, {"layer": 7, **least, **fields})
        assert (status, headers["X-Cache"]) == (200, "hit")
    assert again == lone_png(raised, {"layer": 7, "filter": 127, **least})  # on the CPU, exactly its single image


@pytest.mark.slow
def test_a_zip_holds_one_png_per_filter_each_its_single_requests(handler_with):
    handler = handler_with()
    fields = {"layer": 7, "seed": 4, **TINY}
    body, status, kind, headers = post(handler, {**fields, "filters": "0-2", "output": "zip"})
    assert (status, kind, headers["X-Cache"]) == (200, "application/zip", "miss")
    files = pngs_in(body)
    assert list(files) == ["layer07_filter0000.png", "layer07_filter0001.png", "layer07_filter0002.png"]
    for f, png in enumerate(files.values()):
        assert png == lone_png(handler, {**fields, "filter": f})  # computed afresh, outside the handler
        assert Image.open(io.BytesIO(png)).text["filter"] == str(f)
    again, _, _, headers = post(handler, {**fields, "filters": [0, 1, 2], "output": "zip"})
    assert headers["X-Cache"] == "hit" and again == body  # the same request, the same bytes


@pytest.mark.slow
def test_with_a_group_shape_an_image_does_not_depend_on_its_neighbours_or_slot(handler_with):
    handler = handler_with(group_size=2)
    assert handler.service.operation.group_size == 2
    fields = {"layer": 7, "seed": 4, **TINY}
    first = pngs_in(post(handler, {**fields, "filters": [5, 9, 3], "output": "zip"})[0])
    second, _, _, headers = post(handler, {**fields, "filters": [0, 5], "output": "zip"})  # 5: other neighbour, slot
    assert headers["X-Cache"] == "miss"  # filter 0 is new
    assert pngs_in(second)["layer07_filter0005.png"] == first["layer07_filter0005.png"]
    assert Image.open(io.BytesIO(first["layer07_filter0005.png"])).text["group"] == "2"
    one, _, _, headers = post(handler, {**fields, "filters": [5]})
    assert headers["X-Cache"] == "hit" and one != first["layer07_filter0005.png"]  # a grid of one, labelled
    # A single request runs at shape 1: another image, cached under another key.
    single, _, _, headers = post(handler, {**fields, "filter": 5})
    assert headers["X-Cache"] == "miss" and single == lone_png(handler, {**fields, "filter": 5})
    fresh = handler_with(group_size=2, cache="empty")  # computed again, in another group
    again = pngs_in(post(fresh, {**fields, "filters": [1, 2, 5], "output": "zip"})[0])
    assert again["layer07_filter0005.png"] == first["layer07_filter0005.png"]


@pytest.mark.slow
def test_a_stream_reports_each_groups_progress_and_ends_with_the_zip(handler_with, monkeypatch):
    handler = handler_with(group_size=2)
    grid = {"layer": 7, "filters": "10-14", "output": "zip", "stream": True, **TINY}
    out, statuses, types, sent = streamed(handler, [grid], monkeypatch)
    events = [e for _, _, e in sent[0]]
    assert statuses == [200] and types == ["application/x-ndjson"]
    assert [(e["group"], e["groups"], e["scale"], e["filters"]) for e in events] == [
        (1, 3, 1, [10, 11]), (1, 3, 2, [10, 11]), (2, 3, 1, [12, 13]), (2, 3, 2, [12, 13]), (3, 3, 1, [14]),
        (3, 3, 2, [14])]
    done = json.loads(out[0])
    assert done["event"] == "done" and done["cache"] == "miss"
    plain, _, _, _ = post(handler, {k: v for k, v in grid.items() if k != "stream"})
    assert base64.b64decode(done["zip"]) == plain


class HandlerFrontend(http.server.HTTPServer):
    """A loopback HTTP server that hands each POST /predictions/<name> to the handler of that name,
    as TorchServe's frontend does (a JSON body as `body`, a form's fields by name), one at a time;
    `asked` lists (model, the filter or filters asked)."""

    def __init__(self, handlers: dict):
        super().__init__(("127.0.0.1", 0), FrontendRequest)
        self.handlers, self.asked = handlers, []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FrontendRequest(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        model = self.path.rsplit("/", 1)[1]
        body, kind = self.rfile.read(int(self.headers["Content-Length"])), self.headers["Content-Type"]
        if kind.startswith("application/json"):
            request = {"body": json.loads(body)}
        else:
            form = BytesParser(policy=email.policy.HTTP).parsebytes(f"Content-Type: {kind}\r\n\r\n".encode() + body)
            request = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                       for part in form.iter_parts()}
        fields = request.get("body", request)
        self.server.asked.append((model, fields.get("filters", fields.get("filter"))))
        out, statuses, types, headers = call(self.server.handlers[model], [request])
        self.send_response(statuses[0])
        for name, value in {**headers[0], "Content-Type": types[0], "Content-Length": len(out[0])}.items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(out[0])

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_the_gallery_asks_for_a_layer_in_one_request_where_the_server_allows_it(handler_with, model_dir, tmp_path):
    """The gallery client (`python -m scripts.gallery`) against handlers behind a loopback frontend:
    a layer's pictures in one zip request where the limit allows, one request each where it refuses."""
    frontend = HandlerFrontend({"visualize": handler_with(max_filters=4),
                                "activations": make_handler("activations", model_dir)})
    asked = frontend.asked
    extra = {"seed": 3, **TINY}
    try:
        run_gallery(frontend.url, os.devnull, tmp_path / "g", [7, 14], "0-3,5", extra, "--parallel", "1")
        visualize = [filters for model, filters in asked if model == "visualize"]
        # Five filters are more than this server takes at once: refused, then one request each.
        assert visualize == [[0, 1, 2, 3, 5], [0, 1, 2, 3, 5]] + [0, 1, 2, 3, 5] * 2
        asked.clear()
        records = run_gallery(frontend.url, os.devnull, tmp_path / "h", [7], "0-3", extra, "--parallel", "1")
    finally:
        frontend.shutdown()
    assert [filters for model, filters in asked if model == "visualize"] == ["0-3"]  # the layer in one request
    for f in range(4):
        png = (tmp_path / "h" / f"layer7/filter_{f:04d}.png").read_bytes()
        assert png == lone_png(frontend.handlers["visualize"], {"layer": 7, "filter": f, **extra})  # the CPU's: exact
        assert records[(7, f)]["request"] == {**extra, "layer": 7, "filter": f}
        assert records[(7, f)]["activation"] == float(Image.open(io.BytesIO(png)).text["activation_final"])
