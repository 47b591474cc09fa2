"""End-to-end: a real TorchServe on loopback serving an archive built from this checkout.

It runs on its own ports and temp dir, so it can run beside `make serve`.
"""
import concurrent.futures
import io
import os
import re
import threading
import time

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from serving import torchserve
from tests.support import ROOT, TINY
from tests.support.reference import reference_layer_output
from featureviz.model.network import normalize
from featureviz.pictures import to_png
from featureviz.service.uploads import center_square
from featureviz.optim.param.pixel import Schedule
from bench.ours import visualize
from tests.support.images import png

pytestmark = pytest.mark.e2e


def test_addresses_are_torchserve_defaults_on_loopback():
    props = torchserve.read_properties(os.path.join(ROOT, "config.properties"))
    assert props["inference_address"] == "http://127.0.0.1:8080"
    assert props["management_address"] == "http://127.0.0.1:8081"
    assert props["metrics_address"] == "http://127.0.0.1:8082"
    assert (props["grpc_inference_port"], props["grpc_management_port"]) == ("7070", "7071")
    assert torchserve.registered_models(props) == ["visualize", "activations", "deconv", "saliency", "gradcam",
                                               "occlusion", "layers", "filters"]


def test_torchserve_unpacks_each_archive_into_the_temp_dir_it_was_given(served):
    unpacked = sorted((served["work"] / "tmp" / "models").iterdir())
    assert len(unpacked) >= len(torchserve.registered_models(served["props"]))
    assert all((directory / "featureviz_handler.py").is_file() for directory in unpacked)


def test_stop_removes_the_archives_a_killed_server_left_unpacked(tmp_path):
    left, foreign = tmp_path / "models" / "8d1c0f", tmp_path / "models" / "not-ours"
    left.mkdir(parents=True)
    (left / "featureviz_handler.py").write_text("")
    foreign.mkdir()
    torchserve.stop(str(tmp_path), quiet=True)  # no server runs with this temp dir
    assert not left.exists() and foreign.is_dir()


def test_visualize_returns_the_same_png_for_the_same_request(api):
    fields = {"layer": 7, "filter": 12, **TINY}
    first, again = api.visualize(fields), api.visualize(fields, path="visualize/1.0")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.content == again.content
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("miss", "hit")
    assert first.headers["X-Model-Version"] == again.headers["X-Model-Version"] == "1.0"
    assert "untrained" in first.headers["X-Weights"]
    image = Image.open(io.BytesIO(first.content))
    assert image.mode == "RGB" and image.size == (19, 19)
    assert "untrained" in image.text["weights"] and image.text["model_version"] == "1.0"
    other_seed = api.visualize({**fields, "seed": 1})
    assert other_seed.status_code == 200 and other_seed.content != first.content


def test_visualize_accepts_form_fields(api):
    as_json = api.visualize({"layer": 7, "filter": 3, **TINY})
    form = {k: (None, str(v)) for k, v in {"layer": 7, "filter": 3, **TINY}.items()}
    as_form = requests.post(f"{api.inference}/predictions/visualize", files=form, headers=api.auth, timeout=120)
    assert as_form.status_code == 200 and as_form.content == as_json.content


def test_filters_answer_a_grid_and_fill_the_cache_for_each_filter(api):
    fields = {"layer": 14, **TINY, "seed": 21}
    grid = api.visualize({**fields, "filters": [3, 8]})
    assert grid.status_code == 200 and grid.headers["X-Cache"] == "miss"
    image = Image.open(io.BytesIO(grid.content))
    assert image.size == (2 * 19, 19 + 14) and image.text["filters"] == "3,8"
    form = requests.post(f"{api.inference}/predictions/visualize", headers=api.auth, timeout=120,
                         files={"layer": (None, "14"), "filters": (None, "3,8"), "seed": (None, "21"),
                                **{k: (None, str(v)) for k, v in TINY.items()}})
    assert form.headers["X-Cache"] == "hit" and form.content == grid.content
    single = api.visualize({**fields, "filter": 8})
    assert single.headers["X-Cache"] == "hit"
    bad = api.visualize({**fields, "filters": [3, 3000]})
    assert bad.status_code == 400 and bad.json()["field"] == "filters"


def metric_total(served, name):
    text = requests.get(f"{served['props']['metrics_address']}/metrics", timeout=10).text
    return sum(float(value) for value in re.findall(rf"^{name}\{{.*\}} ([0-9.eE+-]+)$", text, re.M))


def test_filters_are_optimized_together_and_each_is_the_image_the_engine_makes_alone(api, served, features):
    fields = {"layer": 7, "size": 180, "upscaling_steps": 2, "opt_steps": 2, "seed": 77}  # sides 180, 216
    before = metric_total(served, "VisualizeImagesBatched")
    grid = api.visualize({**fields, "filters": [1, 6, 11]})
    assert grid.status_code == 200 and grid.headers["X-Cache"] == "miss"
    deadline = time.monotonic() + 10  # the frontend reads metrics from the worker's log as it comes
    while metric_total(served, "VisualizeImagesBatched") < before + 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric_total(served, "VisualizeImagesBatched") == before + 3
    for f in (1, 6, 11):
        single = api.visualize({**fields, "filter": f})
        assert single.headers["X-Cache"] == "hit"  # the grid's image, cached as this request's
        precision = Image.open(io.BytesIO(single.content)).text["precision"]  # the server's, by default
        alone = visualize(features, 7, f, Schedule(180, 2, 1.2, 2), seed=77, precision=precision).image
        pixels = [np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in (single.content, to_png(alone))]
        assert np.array_equal(*pixels)


def test_default_visualize_at_layer_40_is_408_pixels(api):
    # The article's whole schedule (12 scales up to 408 px, 20 Adam steps each): minutes on a CPU.
    response = api.visualize({"filter": 0})
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (408, 408) and image.text["layer"] == "40"
    assert float(image.text["activation_final"]) > float(image.text["activation_start"])


def test_activations_equal_an_independent_forward_pass(api, state_dict):
    data = png(64, 48)
    raw = api.activations(data=data, headers={**api.auth, "Content-Type": "image/png"})
    form = api.activations(files={"data": ("x.png", data, "image/png"), "layer": (None, "20"),
                                  "size": (None, "32")}, headers=api.auth)
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    assert form.status_code == 200
    image = Image.open(io.BytesIO(data)).convert("RGB")
    for body, layer, size in ((raw.json(), 42, 224), (form.json(), 20, 32)):
        assert body["layer"] == layer and body["channels"] == len(body["means"])
        reference = reference_layer_output(state_dict, layer, normalize(center_square(image, size))[None])
        reference = reference.mean(dim=(2, 3))[0]
        assert torch.allclose(torch.tensor(body["means"]), reference, atol=1e-4)
        assert [t["channel"] for t in body["top"]] == reference.topk(10).indices.tolist()
        assert body["weights"]["trained"] is False


def test_requests_without_the_token_are_refused(api):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = requests.post(f"{api.inference}/predictions/visualize", json={"filter": 1, **TINY},
                                 headers=headers, timeout=30)
        assert 400 <= response.status_code < 500 and "Token" in response.json()["message"]
    assert requests.get(f"{api.management}/models", timeout=10).status_code in (400, 401, 403)


BAD_VISUALIZE = [
    ({"layer": 7, **TINY}, "filter"),
    ({"filter": 1, "layers": 7}, "layers"),
    ({"filter": 1, "layer": 44}, "layer"),
    ({"filter": 1, "layer": "conv5_3"}, "layer"),
    ({"filter": 600}, "filter"),
    ({"filter": -1}, "filter"),
    ({"filter": 1, "size": 4}, "size"),
    ({"filter": 1, "lr": -0.1}, "lr"),
    ({"filter": 1, "blur": 99}, "blur"),
    ({"filter": 1, "opt_steps": 400}, "opt_steps"),
    ({"filter": 1, "upscaling_steps": 30}, "upscaling_steps"),
    ({"filter": 1, "seed": 2**40}, "seed"),
    ([1, 2], "body"),
]


@pytest.mark.parametrize("fields, field", BAD_VISUALIZE)
def test_bad_visualize_requests_get_a_4xx_naming_the_field(api, fields, field):
    response = api.visualize(fields)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["field"] == field and body["message"].startswith(field)
    assert body["model_version"] == response.headers["X-Model-Version"] == "1.0"


def test_malformed_json_gets_a_400(api):
    response = requests.post(f"{api.inference}/predictions/visualize", data=b'{"filter": 1',
                             headers={**api.auth, "Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400 and response.json()["field"] == "body"


BAD_ACTIVATIONS = [
    ({"data": b"not an image"}, {}, "data", 400),
    ({"data": png(fmt="GIF")}, {}, "data", 400),
    ({"data": png()[:80]}, {}, "data", 400),
    ({"data": png(9000, 5000)}, {}, "data", 413),
    ({"data": png()}, {"layer": "44"}, "layer", 400),
    ({"data": png()}, {"size": "20000"}, "size", 400),
    ({"data": png()}, {"filter": "2"}, "filter", 400),
    ({}, {"layer": "3"}, "data", 400),
]


@pytest.mark.parametrize("upload, fields, field, status", BAD_ACTIVATIONS)
def test_bad_activations_requests_get_a_4xx_naming_the_field(api, upload, fields, field, status):
    files = {name: ("x", data, "application/octet-stream") for name, data in upload.items()}
    files.update({name: (None, value) for name, value in fields.items()})
    response = api.activations(files=files, headers=api.auth)
    assert response.status_code == status and response.json()["field"] == field


def test_a_bad_request_beside_good_ones_fails_alone_and_nothing_dies(api):
    before = api.worker_pids()
    good = {"layer": 7, "filter": 5, **TINY}
    bodies = [good, {"layer": 7, "filter": 5000}, good, {"layer": 7}]
    barrier = threading.Barrier(len(bodies))

    def send(fields):
        barrier.wait()  # arrive together, within the model's maxBatchDelay
        return api.visualize(fields)

    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(send, bodies))
    assert [r.status_code for r in responses] == [200, 400, 200, 400]
    assert responses[0].content == responses[2].content
    assert [r.json()["field"] for r in responses[1::2]] == ["filter", "filter"]
    assert api.worker_pids() == before
    assert requests.get(f"{api.inference}/ping", headers=api.auth, timeout=10).json()["status"] == "Healthy"
    assert api.visualize(good).content == responses[0].content


def test_metrics_are_scraped_in_prometheus_format(api, served):
    # Runs after the requests above: misses, hits and refusals have happened.
    metrics = requests.get(f"{served['props']['metrics_address']}/metrics", timeout=10)
    assert metrics.status_code == 200
    text = metrics.text

    def samples(name):
        pattern = re.compile(rf"^{name}\{{(.*)\}} ([0-9.eE+-]+)$", re.M)
        return [(labels, float(value)) for labels, value in pattern.findall(text)]

    for name in ("VisualizeDuration", "VisualizeOptimizationSteps", "VisualizeFinalActivation",
                 "VisualizeCacheHits", "VisualizeCacheMisses", "RequestErrors", "WorkerResidentMemoryBytes",
                 "WorkerAnonymousMemoryBytes"):
        assert samples(name), f"{name} not in /metrics"
    resident = {labels: value for labels, value in samples("WorkerResidentMemoryBytes")}
    assert any('ModelName="visualize"' in labels for labels in resident)  # each worker's, by its model
    assert all(200 * 2**20 < value < 8 * 2**30 for value in resident.values())
    assert all('ModelName="visualize"' in labels for labels, _ in samples("VisualizeDuration"))
    assert sum(value for _, value in samples("VisualizeCacheHits")) >= 1
    errors = samples("RequestErrors")
    assert any('Field="filter"' in labels and 'Status="400"' in labels for labels, _ in errors)
    assert any('Field="data"' in labels and 'Status="413"' in labels for labels, _ in errors)
    assert "ts_inference_requests_total" in text
