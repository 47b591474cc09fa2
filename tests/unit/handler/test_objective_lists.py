"""visualize's `objective` as a list of terms through the handler: a weighted sum raised, its
canonical form in the PNG text and the cache key, its terms measured, every bad term a 400 naming
`objective[i]`; and `negative`'s PNG text reporting the channel's mean."""
import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from featureviz.attribution.activations import channel_means
from featureviz.optim.param.pixel import start_noise
from tests.support import TINY
from tests.support.handler import call, make_handler, streamed
from tests.support.images import photo

FFT = {"param": "fft", "size": 24, "opt_steps": 3}


@pytest.fixture(scope="module")
def visualize(model_dir):
    return make_handler("visualize", model_dir)


def answer(handler, body, headers=None):
    out, statuses, types, found = call(handler, [{"body": body}], **({"headers": headers} if headers else {}))
    return out[0], statuses[0], types[0], found[0]


def text(png: bytes) -> dict:
    return Image.open(io.BytesIO(png)).text


def pixels(png: bytes):
    return Image.open(io.BytesIO(png)).convert("RGB").tobytes()


def image_of(png: bytes) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1]: the PNG's pixels."""
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).copy()).permute(2, 0, 1)[None] / 255


@pytest.mark.parametrize("drawing", [TINY, FFT])
def test_a_list_of_one_channel_term_draws_the_pixels_of_the_layer_and_filter_request(visualize, drawing):
    listed, status, _, _ = answer(visualize, {"objective": [{"channel": [7, 3]}], **drawing})
    single, _, _, _ = answer(visualize, {"layer": 7, "filter": 3, **drawing})
    assert status == 200 and pixels(listed) == pixels(single) and listed != single
    said = text(listed)
    assert said["objective"] == '[{"channel":[7,3],"weight":1}]'
    assert "layer" not in said and "filter" not in said and "activation_final" not in said
    assert json.loads(said["terms"]) == [pytest.approx(float(text(single)["activation_final"]), rel=1e-5)]
    assert float(said["objective_value"]) == pytest.approx(float(text(single)["activation_final"]), rel=1e-5)


def test_the_terms_reported_are_those_of_the_returned_image_and_their_weighted_sum(visualize, engine):
    body = {"objective": [{"channel": [7, 3], "weight": 2}, {"channel": [14, 5], "weight": -0.5},
                          {"direction": [9, [0.01 * k for k in range(128)]]}], "seed": 2, **TINY}
    png, status, _, _ = answer(visualize, body)
    said = text(png)
    assert status == 200 and said["objective"] == json.dumps(
        [{**term, "weight": term.get("weight", 1)} for term in body["objective"]], sort_keys=True, separators=(",", ":"))
    means = {layer: channel_means(engine.features, layer, image_of(png))[0] for layer in (7, 9, 14)}
    expected = [means[7][3].item(), means[14][5].item(), float(means[9] @ torch.tensor([0.01 * k for k in range(128)]))]
    terms = json.loads(said["terms"])
    assert terms == pytest.approx(expected, rel=0.02, abs=1e-3)  # the PNG's 8 bits against the float image
    assert float(said["objective_value"]) == pytest.approx(2 * terms[0] - 0.5 * terms[1] + terms[2], rel=1e-4, abs=1e-5)


def test_a_list_is_cached_by_its_canonical_form(visualize):
    fields = {"seed": 41, **TINY}
    first, _, _, headers = answer(visualize, {"objective": [{"channel": [7, 3]}, {"channel": [7, 5], "weight": 0.5}],
                                              **fields})
    assert headers["X-Cache"] == "miss"
    again, _, _, headers = answer(visualize, {"objective": json.dumps([{"weight": 1, "channel": [7, 3]},
                                                                       {"weight": 0.5, "channel": [7, 5]}]), **fields})
    assert headers["X-Cache"] == "hit" and again == first  # as text, keys in another order, the weight spelled out
    other, _, _, headers = answer(visualize, {"objective": [{"channel": [7, 3]}, {"channel": [7, 5], "weight": 0.25}],
                                              **fields})
    assert headers["X-Cache"] == "miss" and other != first


def test_diversity_and_neuron_terms_draw_with_fft(visualize):
    body = {"objective": [{"neuron": [7, 3, 10, 12]}, {"diversity": 7}], "diversity": 2, "seed": 3, **FFT}
    png, status, _, _ = answer(visualize, body)
    said = text(png)
    assert status == 200 and Image.open(io.BytesIO(png)).size == (2 * 24 + 4, 24)  # two images, side by side
    assert json.loads(said["objective"])[1] == {"diversity": 7, "weight": 100.0}  # diversity_weight's default
    assert len(json.loads(said["terms"])) == 2


def test_a_streamed_list_reports_its_objective_value_each_scale_and_ends_with_the_plain_png(visualize, monkeypatch):
    body = {"objective": [{"channel": [7, 3]}, {"channel": [7, 4], "weight": -1}], "seed": 77, **TINY}
    out, statuses, _, sent = streamed(visualize, [{**body, "stream": True}], monkeypatch)
    events = [event for _, _, event in sent[0]]
    assert statuses == [200] and [e["event"] for e in events] == ["scale", "scale"]
    assert all(isinstance(e["objective_value"], float) and "activation" not in e for e in events)
    done = json.loads(out[0])
    assert base64.b64decode(done["png"]) == answer(visualize, body)[0] and "terms" in done


def test_a_list_as_form_fields_or_grpc_text_and_as_kserve_instances_is_the_json_requests(visualize):
    body = {"objective": [{"channel": [7, 2]}, {"channel": [7, 6], "weight": 0.5}], "seed": 5, **TINY}
    png = answer(visualize, body)[0]
    form = {name: (json.dumps(value) if name == "objective" else str(value)).encode() for name, value in body.items()}
    out, statuses, _, _ = call(visualize, [form], headers={})
    assert statuses == [200] and out[0] == png
    out, statuses, _, _ = call(visualize, [{"body": {"instances": [body]}}])
    assert statuses == [200] and base64.b64decode(json.loads(out[0])["predictions"][0]["b64"]) == png


def test_a_direction_from_the_activations_of_two_sets_of_images_is_raised(visualize, model_dir):
    """A user's direction: the mean activations of one set of their images less another's."""
    activations = make_handler("activations", model_dir)
    sets = [[photo(48)], [photo(40)]]

    def mean(images):
        out, statuses, _, _ = call(activations, [{"data": image, "layer": b"9", "size": b"32"} for image in images])
        return torch.tensor([json.loads(o)["means"] for o in out]).mean(0)

    vector = mean(sets[0]) - mean(sets[1])
    png, status, _, _ = answer(visualize, {"objective": [{"direction": [9, vector.tolist()]}], "seed": 8, **TINY})
    assert status == 200
    reached = json.loads(text(png)["terms"])[0]
    features = activations.service.model.features
    assert reached == pytest.approx(float(channel_means(features, 9, image_of(png))[0] @ vector), rel=0.02, abs=1e-3)
    start = float(channel_means(features, 9, start_noise(16, 8)[None])[0] @ vector)  # the noise it started from
    assert reached > start + 0.1 * abs(start)


BAD = [
    ({"objective": [{"chanel": [7, 3]}]}, "objective[0]", "'chanel' is not a kind of term"),
    ({"objective": [{"channel": [7, 3]}, {"channel": [44, 3]}]}, "objective[1]", "layer 44 is out of range"),
    ({"objective": [{"channel": [7, 128]}]}, "objective[0]", "filter 128 is out of range; layer 7 has 128 channels"),
    ({"objective": [{"channel": [7]}]}, "objective[0]", "channel takes [layer, filter]"),
    ({"objective": [{"channel": [7, 3], "neuron": [7, 3, 0, 0]}]}, "objective[0]", "is not a kind of term"),
    ({"objective": [{"direction": [9, [1.0] * 127]}]}, "objective[0]", "the direction has 127 numbers; layer 9 has 128"),
    ({"objective": '[{"direction": [9, [NaN]]}]'}, "objective[0]", "a direction's numbers finite"),
    ({"objective": '[{"channel": [7, 3], "weight": Infinity}]'}, "objective[0]", "weight"),
    ({"objective": [{"channel": [7, 3], "weight": "2"}]}, "objective[0]", "not a finite number"),
    ({"objective": [{"channel": [7, k]} for k in range(9)]}, "objective", "1 to 8 terms"),
    ({"objective": []}, "objective", "1 to 8 terms"),
    ({"objective": "[1, 2"}, "objective", "not a JSON list of terms"),
    ({"objective": [3]}, "objective[0]", "is not a term"),
    ({"objective": [{"neuron": [7, 3, 1, 1]}]}, "objective[0]", "needs param: fft"),
    ({"objective": [{"neuron": [7, 3, 0, 224]}], **FFT}, "objective[0]", "outside layer 7's 112x112 output"),
    ({"objective": [{"diversity": 7}], **FFT}, "objective[0]", "diversity of 2 or more"),
    ({"objective": [{"channel": [7, 3]}], "diversity": 2, **FFT}, "diversity", "{\"diversity\": layer} term"),
    ({"objective": [{"channel": [7, 3]}], "layer": 7}, "layer", "send no layer beside it"),
    ({"objective": [{"channel": [7, 3]}], "filter": 3}, "filter", "send no filter"),
    ({"objective": [{"channel": [7, 3]}], "filters": [3, 4]}, "filters", "send no filters"),
    ({"objective": [{"channel": [7, 3]}], "negative": True}, "negative", "a negative weight subtracts"),
    ({"objective": [{"channel": [7, 3]}], "x": 2, **FFT}, "x", "objective: neuron"),
]


@pytest.mark.parametrize("fields, field, words", BAD)
def test_each_bad_term_is_a_400_naming_objective_and_its_index(visualize, fields, field, words):
    out, status, kind, _ = answer(visualize, fields if "param" in fields else {**TINY, **fields})
    refusal = json.loads(out)
    assert (status, kind, refusal["field"]) == (400, "application/json", field) and words in refusal["message"]


def test_a_bad_term_beside_good_requests_fails_alone(visualize):
    good = {"objective": [{"channel": [7, 1]}], "seed": 90, **TINY}
    out, statuses, _, _ = call(visualize, [{"body": good}, {"body": {"objective": [{"channel": [7, 999]}]}},
                                           {"body": good}])
    assert statuses == [200, 400, 200] and out[0] == out[2]


def test_negative_reports_the_channels_mean_which_goes_down(visualize, engine):
    png, status, _, _ = answer(visualize, {"layer": 7, "filter": 3, "negative": True, "seed": 6, **TINY})
    said = text(png)
    assert status == 200 and float(said["activation_final"]) < float(said["activation_start"])
    mean = channel_means(engine.features, 7, image_of(png))[0, 3].item()
    assert float(said["activation_final"]) == pytest.approx(mean, rel=0.02, abs=1e-3)
