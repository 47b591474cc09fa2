"""The TorchServe handler, called as TorchServe calls it, with a real ts.context.Context."""
import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from ts.utils.util import PredictionException

from tests.support import TINY
from tests.support.handler import call, lone_png, make_context, make_handler
from tests.support.operations import run_operation
from tests.support.reference import reference_layer_output
from featureviz.model.network import normalize
from featureviz.optim import precision
from featureviz.pictures import to_png
from featureviz.service.uploads import center_square
from featureviz.service.operations.visualize.request import parse_visualize
from featureviz.service.operations.visualize.images import render_images
from featureviz_handler import FeatureVizHandler
from tests.support.images import png

ENGINE = "featureviz.service.operations.visualize.operation.render_images"  # what the tests replace to watch the engine




@pytest.fixture(scope="module")
def handlers(model_dir):
    return {name: make_handler(name, model_dir) for name in ("visualize", "activations")}


@pytest.mark.slow
def test_only_the_registered_operation_names_load(model_dir):
    with pytest.raises(ValueError, match="visualize"):
        FeatureVizHandler().initialize(make_context("featureviz", model_dir))


def test_visualize_json_form_and_grpc_shapes_give_the_same_png(handlers):
    handler = handlers["visualize"]
    json_body = {"body": {"layer": 7, "filter": 12, **TINY}}
    raw_json = {"body": bytearray(json.dumps({"layer": 7, "filter": 12, **TINY}).encode())}
    form = {k: str(v).encode() for k, v in {"layer": 7, "filter": 12, **TINY}.items()}
    out, statuses, types, headers = call(handler, [json_body, raw_json, form])
    assert statuses == [200, 200, 200] and types == ["image/png"] * 3
    assert out[0] == out[1] == out[2]
    image = Image.open(io.BytesIO(out[0]))
    assert image.mode == "RGB" and image.size == (19, 19)  # 16 -> int(1.2 * 16)
    assert image.text["layer"] == "7" and image.text["filter"] == "12"
    assert "untrained" in image.text["weights"] and "untrained" in headers[0]["X-Weights"]
    assert float(image.text["activation_final"]) > float(image.text["activation_start"])


def test_a_bad_request_in_a_batch_gets_its_own_4xx(handlers):
    good = {"body": {"layer": 7, "filter": 1, **TINY}}
    out, statuses, types, _ = call(handlers["visualize"], [good, {"body": {"layer": 7, "filter": 999}},
                                                           {"body": b"{not json"}, good])
    assert statuses == [200, 400, 400, 200]
    assert types == ["image/png", "application/json", "application/json", "image/png"]
    assert json.loads(out[1])["field"] == "filter" and json.loads(out[2])["field"] == "body"
    assert out[0] == out[3]


@pytest.mark.slow
def test_activations_match_an_independent_forward_pass(handlers, state_dict):
    data = png(50, 40)
    out, statuses, types, _ = call(handlers["activations"], [
        {"body": bytearray(data)},
        {"data": data, "layer": b"20", "size": b"32"},
        {"data": b"nope"},
        {"data": data, "layer": b"20", "size": b"32"},
    ])
    assert statuses == [200, 200, 400, 200] and types[0] == "application/json"
    first, second = json.loads(out[0]), json.loads(out[1])
    assert first["layer"] == 42 and first["channels"] == 512 and len(first["means"]) == 512
    assert json.loads(out[3])["means"] == second["means"]
    assert first["weights"]["trained"] is False and first["model_version"] == "1.0"
    image = Image.open(io.BytesIO(data)).convert("RGB")
    for body, layer, size in ((first, 42, 224), (second, 20, 32)):
        x = normalize(center_square(image, size))[None]
        reference = reference_layer_output(state_dict, layer, x).mean(dim=(2, 3))[0]
        assert torch.allclose(torch.tensor(body["means"]), reference, atol=1e-5)
        top = [entry["channel"] for entry in body["top"]]
        assert top == reference.topk(10).indices.tolist()


def test_a_lone_bad_request_over_grpc_is_a_batch_level_400_carrying_the_json(handlers):
    bad = [{"layer": b"7", "filter": b"999"}]
    out, statuses, _, _ = call(handlers["visualize"], bad)  # over HTTP: a per-request status
    assert statuses == [400] and json.loads(out[0])["field"] == "filter"
    with pytest.raises(PredictionException) as caught:
        call(handlers["visualize"], bad, headers={})  # gRPC requests carry no HTTP headers
    assert caught.value.error_code == 400 and json.loads(caught.value.message)["field"] == "filter"


def test_the_cpu_worker_gives_freed_memory_back_once_after_each_batch(handlers, monkeypatch):
    releases = []
    monkeypatch.setattr("featureviz.service.service.release_freed_memory", lambda: releases.append(1))
    handler = handlers["visualize"]
    assert handler.service.keeps_freed_memory  # glibc on the CPU, as on our machines and CI
    good = [{"body": {"layer": 7, "filter": 1, **TINY, "seed": seed}} for seed in (31, 33)]
    _, statuses, _, _ = call(handler, [good[0], {"body": {"layer": 7, "filter": 999}}, good[1]])
    assert statuses == [200, 400, 200] and len(releases) == 1

    def engine_fails(*args):
        raise RuntimeError("engine failure")

    monkeypatch.setattr(ENGINE, engine_fails)
    _, statuses, _, _ = call(handler, [{"body": {"layer": 7, "filter": 2, **TINY, "seed": 32}}])
    assert statuses == [500] and len(releases) == 2  # released even when the engine failed


@pytest.mark.slow
def test_a_batch_optimizes_each_layer_and_schedule_together_and_each_image_is_the_lone_one(handlers, monkeypatch,
                                                                                         caplog):
    handler = handlers["visualize"]
    batches, engine = [], render_images

    def recorded(features, batch, precision, *rest):
        batches.append([(r.layer, r.filter) for r in batch])
        return engine(features, batch, precision, *rest)

    monkeypatch.setattr(ENGINE, recorded)
    # Sides 180, then 216: batch-invariant on our CPUs (tests/unit/optim/test_batching.py); a seed of its own.
    fields = {"layer": 7, "size": 180, "upscaling_steps": 2, "opt_steps": 2, "seed": 20261122}
    bodies = [{**fields, "filter": 4}, {**fields, "filter": 9}, {**fields, "filters": [2, 4]},
              {**fields, "layer": 9, "filter": 1}, {**fields, "filter": 5000}, {**fields, "filter": 4}]
    with caplog.at_level("INFO"):
        out, statuses, types, headers = call(handler, [{"body": body} for body in bodies])
    assert statuses == [200, 200, 200, 200, 400, 200] and [h.get("X-Cache") for h in headers[:4]] == ["miss"] * 4
    assert batches == [[(7, 4), (7, 9), (7, 2)], [(9, 1)]]  # filter 4 asked twice (and in the grid): once
    assert "[METRICS]VisualizeImagesBatched.Count:3" in caplog.text
    assert out[5] == out[0] and Image.open(io.BytesIO(out[2])).text["filters"] == "2,4"
    for i, body in ((0, bodies[0]), (1, bodies[1]), (3, bodies[3]), (None, {**fields, "filter": 2})):
        png = lone_png(handler, body)
        if i is None:  # the grid's filter 2, cached as the single request's image
            i, (out, _, _, headers) = 0, call(handler, [{"body": body}])
            assert headers[0]["X-Cache"] == "hit"
        assert out[i] == png


def test_images_that_do_not_fit_together_are_optimized_one_by_one_and_only_a_lone_misfit_gets_507(
        handlers, monkeypatch):
    batches, engine = [], render_images

    def memory_for_two_small_images(features, batch, precision, *rest):
        batches.append([r.filter for r in batch])
        if len(batch) > 1 or batch[0].schedule.size > 16:
            raise torch.OutOfMemoryError("out of memory")
        return engine(features, batch, precision, *rest)

    monkeypatch.setattr(ENGINE, memory_for_two_small_images)
    fields = {"layer": 7, **TINY, "seed": 41}
    bodies = [{**fields, "filter": 1}, {**fields, "filter": 2}, {**fields, "filter": 3, "size": 20}]
    out, statuses, _, _ = call(handlers["visualize"], [{"body": body} for body in bodies])
    assert statuses == [200, 200, 507] and json.loads(out[2])["field"] == "size"
    assert batches == [[1, 2], [1], [2], [3]]
    monkeypatch.setattr(ENGINE, engine)
    for body, image in zip(bodies[:2], out):
        assert image == lone_png(handlers["visualize"], body)


@pytest.mark.slow
def test_batch_images_is_a_positive_integer_from_the_environment_or_the_model_config(model_dir, monkeypatch):
    handler = FeatureVizHandler()
    handler.initialize(make_context("visualize", model_dir))
    assert handler.service.operation.batch_images == 4  # as many as TorchServe's batchSize in model-config.yaml
    monkeypatch.setenv("FEATUREVIZ_BATCH_IMAGES", "1")  # 1: one image at a time
    handler.initialize(make_context("visualize", model_dir))
    assert handler.service.operation.batch_images == 1
    monkeypatch.setenv("FEATUREVIZ_BATCH_IMAGES", "0")
    with pytest.raises(ValueError, match="batch_images"):
        handler.initialize(make_context("visualize", model_dir))


def test_a_repeated_visualize_answers_from_the_cache_without_the_engine(handlers, monkeypatch):
    request = [{"body": {"layer": 14, "filter": 2, **TINY, "seed": 11}}]
    first, _, _, headers = call(handlers["visualize"], request)
    assert headers[0]["X-Cache"] == "miss"

    def engine_must_not_run(*args):
        raise AssertionError("the engine ran on a cache hit")

    monkeypatch.setattr(ENGINE, engine_must_not_run)
    again, statuses, types, headers = call(handlers["visualize"], request)
    assert headers[0]["X-Cache"] == "hit" and statuses == [200] and types == ["image/png"]
    assert again == first


@pytest.mark.slow
def test_auto_precision_on_the_cpu_is_bf16_only_where_the_processor_computes_it_faster(model_dir, monkeypatch):
    def no_measurement():
        raise AssertionError("measured bf16 where the answer does not depend on it")

    for native, speedup, expected in ((False, None, "fp32"), (True, 2.5, "bf16"), (True, 0.6, "fp32"),
                                      (True, precision.MIN_BF16_SPEEDUP, "bf16")):
        with monkeypatch.context() as patched:
            patched.setattr("featureviz.optim.precision.cpu_computes_bf16", lambda: native)
            patched.setattr("featureviz.optim.precision.bf16_speedup",
                            no_measurement if speedup is None else (lambda: speedup))
            assert make_handler("visualize", model_dir).service.operation.precision == expected
            # one forward pass, computed in fp32 whatever the processor: no measurement
            patched.setattr("featureviz.optim.precision.bf16_speedup", no_measurement)
            assert make_handler("activations", model_dir).service.operation.describe() == "fp32"
    # PyTorch's own detectors, as on a processor without bf16 units
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr("featureviz.optim.precision.bf16_speedup", no_measurement)
    assert make_handler("visualize", model_dir).service.operation.precision == "fp32"


@pytest.mark.slow
def test_precision_is_named_in_the_png_and_part_of_the_cache_key(model_dir, monkeypatch):
    fields = {"layer": 7, "filter": 4, **TINY, "seed": 21}
    monkeypatch.setenv("FEATUREVIZ_PRECISION", "fp32")
    out, _, _, headers = call(make_handler("visualize", model_dir), [{"body": fields}])
    assert Image.open(io.BytesIO(out[0])).text["precision"] == "fp32" and headers[0]["X-Cache"] == "miss"

    monkeypatch.setenv("FEATUREVIZ_PRECISION", "bf16")
    bf16 = make_handler("visualize", model_dir)
    out, _, _, headers = call(bf16, [{"body": fields}])
    assert headers[0]["X-Cache"] == "miss"  # same fields, another precision: not the fp32 image
    assert Image.open(io.BytesIO(out[0])).text["precision"] == "bf16"
    again, _, _, headers = call(bf16, [{"body": fields}])
    assert headers[0]["X-Cache"] == "hit" and again == out
    assert out[0] == lone_png(bf16, fields)  # the cached bytes are what bf16 computes afresh

    monkeypatch.setenv("FEATUREVIZ_PRECISION", "fp8")
    with pytest.raises(ValueError, match="fp8"):
        FeatureVizHandler().initialize(make_context("visualize", model_dir))


def test_filters_give_a_labelled_grid_of_exactly_the_single_filter_images(handlers):
    fields = {"layer": 7, **TINY, "seed": 5}
    grid_out, statuses, types, headers = call(handlers["visualize"], [{"body": {**fields, "filters": [4, 9, 2]}}])
    assert statuses == [200] and types == ["image/png"] and headers[0]["X-Cache"] == "miss"
    grid = Image.open(io.BytesIO(grid_out[0]))
    assert grid.size == (2 * 19, 2 * (19 + 14)) and grid.text["filters"] == "4,9,2"
    assert grid.text["precision"] == handlers["visualize"].service.operation.precision
    for k, f in enumerate((4, 9, 2)):
        single, _, _, single_headers = call(handlers["visualize"], [{"body": {**fields, "filter": f}}])
        assert single_headers[0]["X-Cache"] == "hit"  # the grid cached each single image
        cell = grid.convert("RGB").crop(((k % 2) * 19, (k // 2) * 33 + 14, (k % 2) * 19 + 19, (k // 2) * 33 + 33))
        assert np.array_equal(np.asarray(cell), np.asarray(Image.open(io.BytesIO(single[0])).convert("RGB")))
        # and that is the engine's own single-filter image, computed afresh here
        request = parse_visualize({**fields, "filter": f}, handlers["visualize"].service.model)
        service = handlers["visualize"].service
        fresh = render_images(service.model.features, [request], service.operation.precision)[0].image
        assert np.array_equal(np.asarray(cell), np.asarray(Image.open(io.BytesIO(to_png(fresh))).convert("RGB")))


EXPLAIN_REQUESTS = {  # operation -> (a small good request's fields, a bad one's fields and the field named)
    "deconv": ({"layer": b"13", "size": b"40"}, {"layer": b"13", "filter": b"128"}, "filter"),
    "saliency": ({"method": b"guided", "size": b"40"}, {"method": b"smoothgrad"}, "method"),
    "gradcam": ({"layer": b"33", "size": b"40", "target": b"5"}, {"target": b"1000"}, "target"),
    "occlusion": ({"size": b"40", "window": b"20", "stride": b"20"}, {"size": b"40", "window": b"41"}, "window"),
    "layers": ({"size": b"64"}, {"size": b"8"}, "size"),
    "filters": ({"layer": b"3"}, {"layer": b"4"}, "layer"),
}


@pytest.fixture(scope="module")
def explain_handlers(model_dir):
    return {name: make_handler(name, model_dir) for name in EXPLAIN_REQUESTS}


@pytest.mark.parametrize("operation", list(EXPLAIN_REQUESTS))
def test_explain_operations_answer_png_json_and_a_per_request_400(explain_handlers, operation):
    handler = explain_handlers[operation]
    good, bad, field = EXPLAIN_REQUESTS[operation]
    image = {"data": png(50, 40)} if operation not in ("layers", "filters") else {}
    batch = [{**image, **good}, {**image, **good, "output": b"json"}, {**image, **bad}]
    out, statuses, types, headers = call(handler, batch)
    assert statuses == [200, 200, 400]
    assert types == ["image/png", "application/json", "application/json"]
    picture = Image.open(io.BytesIO(out[0]))
    assert picture.mode == "RGB" and picture.text["operation"] == operation
    assert "untrained" in picture.text["weights"] and headers[0]["X-Model-Version"] == "1.0"
    body = json.loads(out[1])
    assert body["operation"] == operation and body["model_version"] == "1.0"
    assert body["weights"]["trained"] is False
    fields = {k: v.decode() if isinstance(v, bytes) and k != "data" else v for k, v in {**image, **good}.items()}
    direct = run_operation(handler.service.model, operation, fields).json()
    assert {k: v for k, v in body.items() if k in direct} == direct
    assert json.loads(out[2])["field"] == field


@pytest.mark.slow
def test_image_operations_take_the_raw_body_and_json_operations_a_json_body(explain_handlers):
    data = png(50, 40)
    raw, form = [{"body": bytearray(data)}], [{"data": data}]
    gradcam = explain_handlers["gradcam"]
    assert call(gradcam, raw)[0] == call(gradcam, form)[0]
    layers = explain_handlers["layers"]
    out, statuses, types, _ = call(layers, [{"body": {"output": "json", "size": 32}}, {"body": bytearray(b"")}])
    assert statuses == [200, 200] and types == ["application/json", "image/png"]
    assert json.loads(out[0])["layers"][43]["spatial"] == [1, 1]


def test_a_body_nested_too_deep_is_a_400_naming_the_body_and_its_batch_succeeds(handlers):
    good = {"body": {"layer": 7, "filter": 1, **TINY, "seed": 51}}
    deep = b'{"filter": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # TorchServe hands over the bytes it could not decode
    nested = {"filter": [[[[1]]]], "layer": 7}  # one TorchServe could decode
    out, statuses, types, _ = call(handlers["visualize"], [good, {"body": bytearray(deep)}, {"body": nested}, good])
    assert statuses == [200, 400, 400, 200] and types[1] == types[2] == "application/json"
    assert json.loads(out[1])["field"] == "body" and "nested too deeply" in json.loads(out[1])["message"]
    assert json.loads(out[2])["field"] == "filter" and "a JSON list" in json.loads(out[2])["message"]
    assert out[0] == out[3] == lone_png(handlers["visualize"], good["body"])


def test_an_internal_error_refuses_its_request_alone_with_a_500_json(handlers, monkeypatch):
    engine = render_images

    def fails_for_filter_3(features, batch, precision, *rest):
        if any(r.filter == 3 for r in batch):
            raise RuntimeError("a bug of ours")
        return engine(features, batch, precision, *rest)

    monkeypatch.setattr(ENGINE, fails_for_filter_3)
    fields = {"layer": 7, **TINY, "seed": 52}
    bodies = [{**fields, "filter": 1}, {**fields, "filter": 3}, {**fields, "filter": 2}]
    out, statuses, types, headers = call(handlers["visualize"], [{"body": body} for body in bodies])
    assert statuses == [200, 500, 200] and types == ["image/png", "application/json", "image/png"]
    refusal = json.loads(out[1])
    assert refusal["code"] == 500 and refusal["type"] == "InternalServerError" and "RuntimeError" in refusal["message"]
    assert refusal["model_version"] == "1.0" and headers[1]["X-Model-Version"] == "1.0"
    monkeypatch.setattr(ENGINE, engine)
    assert [out[0], out[2]] == [lone_png(handlers["visualize"], bodies[0]), lone_png(handlers["visualize"], bodies[2])]


def test_an_internal_error_while_parsing_refuses_that_request_alone(explain_handlers, monkeypatch):
    handler = explain_handlers["layers"]
    real = handler.service.operation.parse

    def breaks_on_size_40(fields):
        if fields.get("size") == 40:
            raise KeyError("a bug of ours")
        return real(fields)

    monkeypatch.setattr(handler.service.operation, "parse", breaks_on_size_40)
    out, statuses, types, _ = call(handler, [{"body": {"size": 40}}, {"body": {"size": 64, "output": "json"}}])
    assert statuses == [500, 200] and json.loads(out[0])["type"] == "InternalServerError"
    assert json.loads(out[1])["input_size"] == 64


def test_a_result_that_cannot_be_cached_is_still_answered(handlers, monkeypatch):
    fields = {"layer": 7, "filter": 27, **TINY}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", full_disk)
    out, statuses, types, headers = call(handlers["visualize"], [{"body": fields}, {"body": {**fields, "filter": 28}}])
    assert statuses == [200, 200] and types == ["image/png", "image/png"]
    assert [h["X-Cache"] for h in headers] == ["miss", "miss"]
    assert out[0] == lone_png(handlers["visualize"], fields)
