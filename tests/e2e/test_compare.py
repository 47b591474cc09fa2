"""`python -m scripts.compare` and `scripts.gallery --images`, run as a user runs them, against the
suite's TorchServe: version 1.0 (seeded random weights) against a version registered beside it with
other weights (seed 1, one filter zeroed), every figure against an independent forward pass of the
two state dicts, the report in headless Chromium, bad input, a run killed and started again, and
identical weights."""
import concurrent.futures
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from featureviz.model.weights import random_state_dict
from tests.support import ROOT, TINY, browser
from tests.support.gallery import run_gallery
from tests.support.reference import reference_layer_output

pytestmark = pytest.mark.e2e

LAYER = 7  # conv2_1: 128 filters, few enough weights for one `filters` JSON answer
DEEP = 17  # conv3_2: 256 filters, too many weights for one answer: asked filter by filter
ZEROED = 5  # kernel and bias zero in version B at both layers: constant on every image
VERSION_B = "2.0-compare"
SIZE = 32  # the images' side, and `activations`' size: no resizing
TOP = 3
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
USED = [f"image{i}.png" for i in range(7)] + ["photo.jpg"]  # photo.jpg is a PNG: told by content


@pytest.fixture(scope="module")
def weights_b():
    state_dict = random_state_dict(1)
    for layer in (LAYER, DEEP):
        state_dict[f"features.{layer}.weight"][ZEROED] = 0
        state_dict[f"features.{layer}.bias"][ZEROED] = 0
    return state_dict


@pytest.fixture(scope="module")
def version_b(served, api, weights_b):
    """The suite's archive unpacked with weights_b, registered as VERSION_B under the four names the
    tools call, and unregistered after the module."""
    folder = served["store"] / "featureviz-compare"
    if not folder.exists():
        with zipfile.ZipFile(served["store"] / "featureviz.mar") as mar:
            manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
            weights_file = manifest["model"]["serializedFile"]
            mar.extractall(folder, members=[name for name in mar.namelist() if name != weights_file])
        torch.save(weights_b, folder / weights_file)
        sha256 = hashlib.sha256((folder / weights_file).read_bytes()).hexdigest()
        (folder / "weights.json").write_text(json.dumps({"source": "random", "seed": 1, "trained": False,
                                                         "sha256": sha256}))
        manifest["model"]["modelVersion"] = VERSION_B
        (folder / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
    names = ("layers", "filters", "activations", "visualize")

    def register(name):
        return requests.post(f"{api.management}/models", headers=api.manage, timeout=300,
                             params={"url": folder.name, "model_name": name, "initial_workers": 1,
                                     "synchronous": "true"})
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        for response in pool.map(register, names):
            assert response.status_code == 200, response.text
    try:
        yield VERSION_B
    finally:
        for name in names:
            requests.delete(f"{api.management}/models/{name}/{VERSION_B}", headers=api.manage, timeout=60)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Eight images of their own colour, contrast and noise; a text file, a text file named .png, and
    a 1 x 20000 PNG that the server refuses (resized to SIZE it would pass its pixel limit)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    for i, name in enumerate(USED):
        wave = np.sin(2 * np.pi * (rng.uniform(0.5, 4) * x + rng.uniform(0.5, 4) * y))[..., None]
        rgb = rng.uniform(0.2, 0.8, 3) + rng.uniform(0.05, 0.3) * wave + rng.normal(0, rng.uniform(0.02, 0.2),
                                                                                    (SIZE, SIZE, 3))
        Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(folder / name, format="PNG")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "fake.png").write_bytes(b"not a PNG either")
    Image.new("RGB", (1, 20000), (200, 10, 10)).save(folder / "strip.png")
    return folder


def compare(url, key, a, b, layer, folder, out, *options, cwd=ROOT, timeout=600, **fields):
    """python -m scripts.compare as a user runs it: the finished process."""
    pairs = [f"{name}={value}" for name, value in {**TINY, **fields}.items()]
    key_options = ["--key", key] if key else []
    return subprocess.run([sys.executable, "-m", "scripts.compare", "--url", url, "--a", a, "--b", b,
                           "--layer", str(layer), "--images", str(folder), "--out", str(out), "--size", str(SIZE),
                           "--top", str(TOP), *key_options, *options, *pairs], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT})


def summary_of(done, out) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def layer_means(state_dict, layer, folder, names, size=SIZE) -> np.ndarray:
    """(images, channels): each image's mean of each channel of features[layer], by a fresh
    torchvision vgg16_bn; the images resized here as the service documents (bilinear, square)."""
    pixels = [np.asarray(Image.open(folder / name).convert("RGB").resize((size, size), Image.BILINEAR),
                         dtype=np.float32) / 255 for name in names]
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return reference_layer_output(state_dict, layer, x).mean(dim=(2, 3)).double().numpy()


def tops(means: np.ndarray, names: list, k: int = TOP) -> list[set]:
    return [{names[i] for i in np.argsort(-means[:, f], kind="stable")[:k]} for f in range(means.shape[1])]


def check_figures(summary, state_a, state_b, layer, folder):
    """Every filter's figures against the independent computation; the order by change."""
    a, b = layer_means(state_a, layer, folder, USED), layer_means(state_b, layer, folder, USED)
    kernels_a = state_a[f"features.{layer}.weight"].double()
    kernels_b = state_b[f"features.{layer}.weight"].double()
    rows = {row["filter"]: row for row in summary["filters"]}
    assert sorted(rows) == list(range(a.shape[1]))
    top_a, top_b = tops(a, USED), tops(b, USED)
    for f, row in rows.items():
        distance = float((kernels_a[f] - kernels_b[f]).norm() / kernels_a[f].norm())
        assert row["weight_distance"] == pytest.approx(distance, rel=1e-6), f
        if f == ZEROED:
            assert row["activation_correlation"] is None and np.ptp(b[:, f]) == 0
        else:
            assert abs(row["activation_correlation"] - np.corrcoef(a[:, f], b[:, f])[0, 1]) < 1e-4, f
        assert (set(row["top_a"]), set(row["top_b"])) == (top_a[f], top_b[f]), f
    order = [(r["activation_correlation"] is None, r["activation_correlation"] or 0, r["filter"])
             for r in summary["filters"]]
    assert order == sorted(order) and summary["filters"][-1]["filter"] == ZEROED


def requests_served(served) -> dict:
    """TorchServe's count of inference requests, by model name (all versions)."""
    text = requests.get(f"{served['props']['metrics_address']}/metrics", timeout=10).text
    counts = {}
    for labels, value in re.findall(r"^ts_inference_requests_total\{(.*)\} ([0-9.eE+-]+)$", text, re.M):
        name = re.search(r'model_name="([^"]+)"', labels).group(1)
        counts[name] = counts.get(name, 0) + float(value)
    return counts


@pytest.mark.browser
def test_the_figures_match_an_independent_forward_pass_and_the_report_opens(api, version_b, images, state_dict,
                                                                           weights_b, tmp_path):
    out = tmp_path / "report"
    summary = summary_of(compare(api.inference, api.auth["Authorization"][7:], "1.0", version_b, LAYER, images,
                                 out, "--draw", "4", "--url-b", api.inference + "/"), out)
    assert summary["layer"] == LAYER and summary["images"] == sorted(USED)
    assert (summary["a"]["model_version"], summary["b"]["model_version"]) == ("1.0", VERSION_B)
    assert summary["a"]["url"] == summary["b"]["url"] == api.inference
    assert summary["a"]["weights"] != summary["b"]["weights"]  # the same words, other checksums
    skipped = {s["file"]: s["reason"] for s in summary["skipped"]}
    assert sorted(skipped) == ["fake.png", "notes.txt", "strip.png"]
    assert "not a JPEG or PNG" in skipped["notes.txt"] and "not a JPEG or PNG" in skipped["fake.png"]
    assert "refused by version 1.0" in skipped["strip.png"] and "1x20000" in skipped["strip.png"]
    check_figures(summary, state_dict, weights_b, LAYER, images)

    for rank, row in enumerate(summary["filters"]):
        for side, version in (("a", "1.0"), ("b", VERSION_B)):
            path = row[f"picture_{side}"]
            if rank >= 4:
                assert path is None
                continue
            assert path == f"{side}/filter{row['filter']:04d}.png"
            text = Image.open(out / path).text
            assert (text["filter"], text["layer"], text["model_version"]) == (str(row["filter"]), str(LAYER), version)
    assert Image.open(out / "histogram.png").format == "PNG"

    dom = browser.dom(str(out / "index.html"))
    pictures = 1 + 2 * 4 + 2 * TOP * len(summary["filters"])  # histogram, drawn pictures, thumbnails
    assert f'data-images="{pictures}"' in dom and f'data-images-loaded="{pictures}"' in dom, dom[:500]
    assert 'class="broken"' not in dom and "No change" not in dom
    for source in re.findall(r'<img src="([^"]+)"', dom):
        assert "://" not in source and not source.startswith("/") and (out / source).is_file(), source
    assert len(re.findall(r"<tr>", dom)) == 1 + len(summary["filters"]) and "<th data-sort" in dom


def test_a_deep_layer_run_killed_and_started_again_reuses_its_answers(served, api, version_b, images, state_dict,
                                                                      weights_b, tmp_path):
    out = tmp_path / "deep"
    key = api.auth["Authorization"][7:]
    command = [sys.executable, "-m", "scripts.compare", "--url", api.inference, "--a", "1.0", "--b", version_b,
               "--layer", str(DEEP), "--images", str(images), "--out", str(out), "--size", str(SIZE), "--top",
               str(TOP), "--draw", "2", "--key", key, *[f"{k}={v}" for k, v in TINY.items()]]
    running = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    answers = out / "answers.jsonl"
    deadline = time.monotonic() + 300
    while (not answers.exists() or answers.read_text().count("\n") < 40) and time.monotonic() < deadline:
        time.sleep(0.05)
    running.send_signal(signal.SIGKILL)
    assert running.wait(30) == -signal.SIGKILL  # killed while it ran, not finished
    kept = answers.read_text().count("\n")

    before = requests_served(served)
    summary = summary_of(compare(api.inference, key, "1.0", version_b, DEEP, images, out, "--draw", "2"), out)
    after = requests_served(served)
    asked = {name: after.get(name, 0) - before.get(name, 0) for name in ("filters", "activations", "visualize")}
    check_figures(summary, state_dict, weights_b, DEEP, images)
    # Each cached answer is one request fewer: a filter's pair of kernels, or one image's means.
    whole = 2 * 256 + 2 * (len(USED) + 1) + 2 * 2
    assert 0 < asked["filters"] + asked["activations"] + asked["visualize"] <= whole - kept

    again = requests_served(served)
    assert summary_of(compare(api.inference, key, "1.0", version_b, DEEP, images, out, "--draw", "2"), out) == summary
    after = requests_served(served)
    assert all(after.get(name, 0) == again.get(name, 0) for name in ("filters", "activations", "visualize"))


def test_identical_weights_say_no_change_with_the_key_from_key_file_json(served, api, images, tmp_path):
    (tmp_path / "key_file.json").write_text((served["work"] / "key_file.json").read_text())
    out = tmp_path / "same"
    summary = summary_of(compare(api.inference, None, "1.0", "1.0", LAYER, images, out, "--draw", "2",
                                 cwd=tmp_path), out)
    assert all(r["weight_distance"] == 0.0 and r["activation_correlation"] == 1.0 for r in summary["filters"])
    assert [r["filter"] for r in summary["filters"]] == list(range(128))  # all tied: by filter index
    page = (out / "index.html").read_text()
    assert "<b>No change</b>" in page and page.count(">no change</td>") == 128


@pytest.mark.parametrize("case, expected", [
    ("empty folder", "the folder is empty"),
    ("no image", "none of its 2 files is a JPEG or PNG image"),
    ("unknown version", "9.9"),
    ("unreachable server", "cannot reach the server at http://127.0.0.1:9"),
    ("not a convolution", "--layer 8 is not a convolution; expected one of 0, 3, 7, 10"),
    ("wrong key", "--key"),
])
def test_bad_input_stops_at_once_naming_it(api, images, tmp_path, case, expected):
    folder, url, version, layer, key = images, api.inference, "1.0", LAYER, api.auth["Authorization"][7:]
    if case == "empty folder":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif case == "no image":
        folder = tmp_path / "texts"
        folder.mkdir()
        (folder / "a.txt").write_text("a")
        (folder / "b.png").write_text("b")
    elif case == "unknown version":
        version = "9.9"
    elif case == "unreachable server":
        url = "http://127.0.0.1:9"
    elif case == "not a convolution":
        layer = 8
    else:
        key = "wrong"
    started = time.monotonic()
    done = compare(url, key, "1.0", version, layer, folder, tmp_path / "out", timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("error: ") and expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out" / "summary.json").exists()
    if case in ("empty folder", "no image"):
        assert str(folder) in done.stderr
    assert time.monotonic() - started < 30


@pytest.mark.browser
def test_the_gallery_shows_each_filters_dataset_examples(served, api, images, state_dict, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(api.auth["Authorization"][7:])
    out = tmp_path / "gallery"
    run_gallery(api.inference, key_file, out, [LAYER], "0-3", TINY, "--images", str(images), "--top", str(TOP))
    expected = tops(layer_means(state_dict, LAYER, images, USED, size=224), USED)
    index = (out / "index.html").read_text()
    for f in range(4):
        tile = re.search(rf'href="layer{LAYER}/filter_{f:04d}.html".*?</a>', index).group(0)
        assert set(re.findall(r'title="([^"]+)"', tile)) == expected[f], f
        detail = (out / f"layer{LAYER}/filter_{f:04d}.html").read_text()
        assert set(re.findall(r'<img src="\.\./examples/[^"]+" alt="[^"]+" title="([^"]+)"', detail)) == expected[f]
    for name in ("fake.png", "notes.txt", "strip.png"):
        assert f"skipped {name}" in index
    dom = browser.dom(str(out / "index.html"))
    assert 'data-images="16"' in dom and 'data-images-loaded="16"' in dom, dom[:500]
