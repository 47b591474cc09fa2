"""lucent's way of drawing (param fft, decorrelated colour, random transforms, neuron, negative,
diversity) and the article's default, which must not change."""
import hashlib

import pytest
import torch

from featureviz.pictures import to_png
from featureviz.service.operations.visualize.images import render_images
from featureviz.service.operations.visualize.request import parse_visualize

PINNED = {"layer": 7, "filter": 12, "size": 16, "upscaling_steps": 2, "opt_steps": 2}
# The article's picture and cache key for PINNED, as they were before the drawing fields existed
# (fp32, seeded random weights, on the CPU).
PINNED_PNG_SHA256 = "12493207df64d1da7acafc598d9075fef83596efa7f916f0cf8518523e132f87"
PINNED_CACHE_KEY = "85b02aa44f070bea087e6a195459c525d29aedb524479a85c0601449424ca9cd"
CONTEXT = {"weights": "0", "device": "cpu", "precision": "fp32", "model_version": "1.0"}
ARTICLE_TEXT = ("layer", "filter", "seed", "activation_start", "activation_final", "precision")


def pinned_png(engine, fields):
    """The picture as the service makes it, with the text of the request (no provenance), and its key."""
    request = parse_visualize(fields, engine)
    image = render_images(engine.features, [request], "fp32")[0]
    text = [request.layer, request.filter, request.seed, f"{image.activation_start:.6g}",
            f"{image.activation_final:.6g}", "fp32"]
    return to_png(image.image, dict(zip(ARTICLE_TEXT, text))), request.cache_key(**CONTEXT)


def test_the_article_default_keeps_its_cache_key(engine):
    assert pinned_png(engine, PINNED)[1] == PINNED_CACHE_KEY


# oneDNN's kernels, and so a picture's last bits, depend on the instruction set: the hash is
# AVX2's (where it was recorded), as in test_pinned_answers.py.
@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() != "AVX2", reason="the pinned hash is AVX2's")
def test_the_article_default_gives_the_same_bytes_as_before(engine):
    assert hashlib.sha256(pinned_png(engine, PINNED)[0]).hexdigest() == PINNED_PNG_SHA256


# --- the engine against lucent itself (torch-lucent 0.1.8) and direct computations ---------------

import math  # noqa: E402
from collections import OrderedDict  # noqa: E402

import numpy as np  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tests.support.reference import reference_layer_output  # noqa: E402
from featureviz.model.network import normalize  # noqa: E402
from featureviz.optim.objectives import neuron  # noqa: E402
from featureviz.optim.param.color import to_valid_rgb  # noqa: E402
from featureviz.optim.param.fft import random_spectrum, spectrum_image, spectrum_scale  # noqa: E402
from featureviz.optim.readout import readout  # noqa: E402
from featureviz.optim.transforms import rotate, scale, shift  # noqa: E402
from featureviz.pictures import GAP  # noqa: E402
from bench.ours import draw  # noqa: E402
from bench.peers import import_lucent  # noqa: E402

LAYER = 9  # the ReLU after conv2_1: shallow, quick at 48 px, and its activations are >= 0
SMALL = {"size": 24, "network_side": 48}
LR = 0.05


@pytest.fixture(scope="module")
def lucent():
    return import_lucent()


@pytest.mark.parametrize("side", [32, 33])
@pytest.mark.parametrize("decorrelate", [True, False])
def test_the_fft_image_is_lucents_fft_image_and_to_valid_rgb_on_the_same_spectrum(lucent, side, decorrelate):
    params, image_of = lucent.param.image(side, batch=2, decorrelate=decorrelate)
    spectrum = random_spectrum(2, side, side, seed=5)
    assert params[0].shape == spectrum.shape
    with torch.no_grad():
        params[0].copy_(spectrum)
        theirs = image_of()
    ours = to_valid_rgb(spectrum_image(spectrum, side, side, spectrum_scale(side, side)), decorrelate)
    assert ours.shape == theirs.shape == (2, 3, side, side)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)


def test_each_standard_transform_is_lucents_for_the_same_draw(lucent):
    transform = lucent.transform
    image = torch.rand(2, 3, 37, 37)
    assert torch.allclose(rotate(image, 7), transform.random_rotate([7])(image), atol=1e-5)
    for factor in (0.9, 1.08):
        assert torch.equal(scale(image, factor), transform.random_scale([factor])(image))
    np.random.seed(3)
    dx, dy = np.random.choice(8), np.random.choice(8)
    np.random.seed(3)
    assert torch.allclose(shift(image, int(dx), int(dy)), transform.jitter(8)(image), atol=1e-5)


def channel_mean_at(state_dict, image, side, filter):
    """An independent measure: the channel's mean at LAYER for a [0, 1] image upsampled to `side`."""
    x = F.interpolate(normalize(image[None]), size=(side, side), mode="bilinear", align_corners=True)
    return reference_layer_output(state_dict, LAYER, x)[0, filter].mean().item()


@pytest.mark.slow
def test_fft_with_standard_transforms_reaches_lucents_render_vis_activation(lucent, model, features, state_dict):
    # The same channel, weights and schedule (24 px image, 48 px network input, 64 Adam steps at
    # lr 0.05): medians over three seeds, since lucent draws from the global generators. lucent
    # gets the layers up to the target, as `features_9` of a network of its own.
    filter, steps = 6, 64
    shallow = torch.nn.Sequential(OrderedDict(features=model.features[:LAYER + 1])).eval()
    ours, theirs = [], []
    for seed in range(3):
        image = draw(features, LAYER, filter, steps=steps, seed=seed, **SMALL).image
        ours.append(channel_mean_at(state_dict, image, SMALL["network_side"], filter))
        torch.manual_seed(seed), np.random.seed(seed)
        images = lucent.render.render_vis(shallow, f"features_{LAYER}:{filter}",
                                          lambda: lucent.param.image(SMALL["size"]), thresholds=(steps,),
                                          fixed_image_size=SMALL["network_side"], show_image=False, progress=False)
        theirs.append(channel_mean_at(state_dict, torch.from_numpy(images[-1][0]).permute(2, 0, 1),
                                      SMALL["network_side"], filter))
    start = channel_mean_at(state_dict, to_valid_rgb(spectrum_image(
        random_spectrum(1, 24, 24, 0), 24, 24, spectrum_scale(24, 24)), True)[0], SMALL["network_side"], filter)
    assert np.median(theirs) > start  # lucent's run raised it, so the ratio means something
    assert np.median(ours) >= 0.9 * np.median(theirs), (ours, theirs)


def one_adam_step_image(state_dict, filter, seed, value_of):
    """The image after one Adam step (lr 0.05) on `value_of(layer output)`, by direct autograd
    through torchvision's network: Adam's first step is lr * g / (|g| + eps)."""
    size, side = SMALL["size"], SMALL["network_side"]
    spectrum = random_spectrum(1, size, size, seed).requires_grad_(True)
    spectral = spectrum_scale(size, size)
    image = to_valid_rgb(spectrum_image(spectrum, size, size, spectral), True)
    x = F.interpolate(normalize(image), size=(side, side), mode="bilinear", align_corners=True)
    with torch.enable_grad():
        value_of(reference_layer_output(state_dict, LAYER, x, grad=True)[0, filter]).backward()
    grad = spectrum.grad
    stepped = spectrum.detach() + LR * grad / (grad.abs() + 1e-8)
    return to_valid_rgb(spectrum_image(stepped, size, size, spectral), True)[0]


@pytest.mark.slow
@pytest.mark.parametrize("negative", [False, True])
def test_neuron_and_negative_step_as_direct_autograd_of_the_neuron(features, state_dict, negative):
    filter, x, y = 10, 3, 17
    sign = -1 if negative else 1
    ours = draw(features, LAYER, filter, steps=1, seed=2, transforms=False,
                objective=sign * neuron(LAYER, filter, x, y), **SMALL).image
    expected = one_adam_step_image(state_dict, filter, 2, lambda out: sign * out[y, x])
    assert torch.allclose(ours, expected, atol=1e-4)
    # ... and not the channel's step, nor the other sign's
    channel = one_adam_step_image(state_dict, filter, 2, lambda out: sign * out.mean())
    other = one_adam_step_image(state_dict, filter, 2, lambda out: -sign * out[y, x])
    assert (ours - channel).abs().max() > 1e-3 and (ours - other).abs().max() > 1e-3


def test_the_article_objective_takes_neuron_and_negative(features, state_dict):
    filter, image = 9, normalize(torch.rand(1, 3, 40, 40))
    out = reference_layer_output(state_dict, LAYER, image)[0, filter]
    objective = -neuron(LAYER, filter)
    with torch.no_grad():
        total, values = objective(readout(features, [objective])([image])[0])
    assert torch.allclose(total, -out[10, 10], atol=1e-4)  # the centre of 20 x 20
    assert torch.allclose(values, out[10, 10].reshape(1), atol=1e-4)  # its terms as they are


def gram_cosines(state_dict, images, side):
    """Mean cosine similarity of the images' Gram matrices at LAYER, pair by pair."""
    x = F.interpolate(normalize(images), size=(side, side), mode="bilinear", align_corners=True)
    flat = reference_layer_output(state_dict, LAYER, x).flatten(2)
    grams = (flat @ flat.transpose(1, 2)).flatten(1)
    grams = grams / grams.norm(dim=1, keepdim=True)
    n = len(grams)
    return [float(grams[i] @ grams[j]) for i in range(n) for j in range(i + 1, n)]


def tiles(grid, n, side):
    cols = math.ceil(math.sqrt(n))
    return torch.stack([grid[:, (k // cols) * (side + GAP):(k // cols) * (side + GAP) + side,
                             (k % cols) * (side + GAP):(k % cols) * (side + GAP) + side] for k in range(n)])


@pytest.mark.slow
def test_diversity_images_are_less_alike_than_without_the_penalty(features, state_dict):
    n, filter = 3, 6
    apart = draw(features, LAYER, filter, steps=30, images=n, seed=1, **SMALL).image
    alike = draw(features, LAYER, filter, steps=30, images=n, diversity_weight=0, seed=1, **SMALL).image
    assert apart.shape == (3, 2 * 24 + GAP, 2 * 24 + GAP)  # 3 images in a 2 x 2 grid
    apart_cos = np.mean(gram_cosines(state_dict, tiles(apart, n, 24), 48))
    alike_cos = np.mean(gram_cosines(state_dict, tiles(alike, n, 24), 48))
    assert apart_cos < alike_cos, (apart_cos, alike_cos)


# --- the fields, served through the handler ----------------------------------------------------

import base64  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402

from PIL import Image  # noqa: E402

from tests.support.handler import call, make_handler  # noqa: E402
from tests.support.handler import streamed  # noqa: E402

FFT = {"layer": 2, "param": "fft", "size": 24, "opt_steps": 2}  # conv1_1's ReLU at 224 px: quick


@pytest.fixture(scope="module")
def visualize(model_dir):
    return make_handler("visualize", model_dir)


def test_the_same_fft_request_gives_the_same_bytes_and_each_field_its_own_image(visualize):
    requests = [{**FFT, "filter": 3}, {**FFT, "filter": 3, "seed": 1}, {**FFT, "filter": 3, "decorrelate": False},
                {**FFT, "filter": 3, "transforms": "none"}, {**FFT, "filter": 3, "objective": "neuron", "x": 5},
                {**FFT, "filter": 3, "negative": True}, {**FFT, "filter": 3, "diversity": 2},
                {**FFT, "filter": 3, "diversity": 2, "diversity_weight": 0}]
    out, statuses, types, _ = call(visualize, [{"body": r} for r in requests])
    assert statuses == [200] * len(requests) and types == ["image/png"] * len(requests)
    assert len(set(out)) == len(out)
    again = call(visualize, [{"body": requests[0]}, {"body": {k: str(v) for k, v in requests[4].items()}}])[0]
    assert again == [out[0], out[4]]  # from the cache, and as form fields / gRPC text
    first = Image.open(io.BytesIO(out[0]))
    assert first.size == (24, 24) and first.text["param"] == "fft" and first.text["transforms"] == "standard"
    assert Image.open(io.BytesIO(out[6])).size == (2 * 24 + GAP, 24)  # two images, side by side


def test_the_cache_key_holds_the_new_fields_and_the_article_s_key_is_unchanged(engine):
    keys = {parse_visualize({**PINNED, **extra}, engine).cache_key(**CONTEXT)
            for extra in ({}, {"param": "pixel"}, {"negative": False}, {"negative": True},
                          {"objective": "neuron"}, {"param": "fft", "upscaling_steps": 1, "blur": None})}
    assert PINNED_CACHE_KEY in keys and len(keys) == 4  # the first three are the article's request


def test_fft_takes_lucents_schedule_defaults_and_explicit_fields_win(engine):
    request = parse_visualize({"filter": 3, "param": "fft"}, engine)
    assert (request.schedule.size, request.schedule.upscaling_steps, request.schedule.opt_steps,
            request.schedule.lr, request.schedule.blur) == (128, 1, 512, 0.05, None)
    assert (request.drawing.decorrelate, request.drawing.transforms) == (True, "standard")
    request = parse_visualize({"filter": 3, "param": "fft", "size": 64, "lr": 0.1, "decorrelate": "false"}, engine)
    assert (request.schedule.size, request.schedule.lr, request.drawing.decorrelate) == (64, 0.1, False)


@pytest.mark.parametrize("fields, field", [
    ({"param": "lucid"}, "param"), ({"param": "fft", "decorrelate": "maybe"}, "decorrelate"),
    ({"param": "fft", "transforms": "all"}, "transforms"), ({"objective": "layer"}, "objective"),
    ({"param": "fft", "objective": "neuron", "x": -1}, "x"), ({"param": "fft", "objective": "neuron", "y": 224}, "y"),
    ({"param": "fft", "x": 3}, "x"), ({"negative": "no way"}, "negative"), ({"param": "fft", "diversity": 9}, "diversity"),
    ({"param": "fft", "diversity": 0}, "diversity"), ({"param": "fft", "diversity": 2, "diversity_weight": -1}, "diversity_weight"),
    ({"transforms": "standard"}, "transforms"), ({"decorrelate": True}, "decorrelate"), ({"diversity": 2}, "diversity"),
    ({"objective": "neuron", "x": 2}, "x"), ({"param": "fft", "upscaling_steps": 3}, "upscaling_steps"),
    ({"param": "fft", "blur": 3}, "blur"), ({"param": "fft", "opt_steps": 4000}, "opt_steps"),
    ({"param": "fft", "diversity": 8}, "diversity"), ({"param": "fft", "filters": list(range(17))}, "filters"),
])
def test_each_bad_drawing_value_is_a_400_naming_its_field(visualize, fields, field):
    body = {"layer": 2, **fields} if "filters" in fields else {"layer": 2, "filter": 3, **fields}
    out, statuses, _, _ = call(visualize, [{"body": body}])
    assert statuses == [400] and json.loads(out[0])["field"] == field


def test_fft_streams_filters_and_kserve_instances_give_the_single_requests_images(visualize, monkeypatch):
    alone = [call(visualize, [{"body": {**FFT, "filter": f}}])[0][0] for f in (3, 4)]
    fresh = {**FFT, "filter": 3, "seed": 7}  # not in the cache: a hit would stream only `done`
    out, statuses, _, sent = streamed(visualize, [{**fresh, "stream": True}], monkeypatch)
    assert statuses == [200] and [e["event"] for _, _, e in sent[0]] == ["scale"]
    assert base64.b64decode(json.loads(out[0])["png"]) == call(visualize, [{"body": fresh}])[0][0]
    out, statuses, _, _ = call(visualize, [{"body": {"instances": [{**FFT, "filter": f} for f in (3, 4)]}}])
    assert [base64.b64decode(p["b64"]) for p in json.loads(out[0])["predictions"]] == alone
    out, statuses, _, _ = call(visualize, [{"body": {**FFT, "filters": [3, 4]}}])
    grid = Image.open(io.BytesIO(out[0]))
    assert statuses == [200] and grid.width == 2 * 24
