"""The CUDA path: graphs, precision, no host sync in the loop, the handler on gpu_id 0.

These need a CUDA GPU; CI has none, so they are skipped there (docs/performance.md, "CUDA graphs",
gives the date and GPU of their last run)."""
import io
import json

import pytest
import torch
from PIL import Image

from bench.gpu import host_syncs
from bench.ours import visualize, visualize_group, visualize_many
from featureviz.model.network import build_model
from featureviz.optim.param.pixel import Schedule
from featureviz_handler import FeatureVizHandler
from tests.support.handler import call, make_context

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
SMALL = Schedule(size=32, upscaling_steps=3, opt_steps=6)


@pytest.fixture(scope="module")
def cuda_features(state_dict):
    return build_model(state_dict, "cuda").features


@pytest.fixture(scope="module")
def cpu_features(state_dict):
    return build_model(state_dict).features


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_graphed_steps_match_eager_steps(cuda_features, precision):
    graphed = visualize(cuda_features, 20, 5, SMALL, seed=3, precision=precision)
    eager = visualize(cuda_features, 20, 5, SMALL, seed=3, precision=precision, cuda_graphs=False)
    again = visualize(cuda_features, 20, 5, SMALL, seed=3, precision=precision)
    assert torch.equal(graphed.image, again.image)  # deterministic cuDNN: a repeat is exact
    assert graphed.image.shape == eager.image.shape == (3, SMALL.sides()[-1], SMALL.sides()[-1])
    # The graph's Adam keeps its step count on the GPU: rounding differs, the optimization not.
    assert graphed.activation_final == pytest.approx(eager.activation_final, rel=0.05)
    assert graphed.activation_final > 2 * graphed.activation_start


@pytest.mark.parametrize("graphs", [True, False])
def test_images_optimized_together_on_the_gpu_are_each_the_image_alone(cuda_features, graphs):
    schedule = Schedule(size=48, upscaling_steps=4, upscaling_factor=1.6, opt_steps=5)
    filters, seeds = [1, 6, 8], [2, 2, 5]
    together = visualize_many(cuda_features, 20, filters, seeds, schedule, "tf32", cuda_graphs=graphs)
    print("sides batched on this GPU:", together[0].batched_sides)  # which is cuDNN's choice
    for result, filter, seed in zip(together, filters, seeds):
        alone = visualize(cuda_features, 20, filter, schedule, seed, "tf32", cuda_graphs=graphs)
        assert torch.equal(result.image, alone.image)
        assert result.activation_per_scale == alone.activation_per_scale


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
@pytest.mark.parametrize("group_size", [4, 8])
def test_in_a_group_of_fixed_shape_an_image_ignores_its_neighbours_and_slot(cuda_features, precision, group_size):
    """What a `filters` request relies on where group_size > 1 (optim.groups;
    docs/performance.md, "Groups of a fixed shape")."""
    schedule = Schedule(size=48, upscaling_steps=4, upscaling_factor=1.6, opt_steps=5)
    first = visualize_group(cuda_features, 20, [5] + list(range(10, 10 + group_size - 1)), [1] * group_size,
                            group_size, schedule, precision)[0]
    last = visualize_group(cuda_features, 20, list(range(30, 30 + group_size - 1)) + [5], [2] * (group_size - 1) + [1],
                           group_size, schedule, precision)[-1]
    lonely = visualize_group(cuda_features, 20, [5], [1], group_size, schedule, precision)[0]
    assert torch.equal(first.image, last.image) and torch.equal(first.image, lonely.image)
    assert first.activation_per_scale == last.activation_per_scale == lonely.activation_per_scale


def test_strict_fp32_on_the_gpu_follows_the_cpu(cuda_features, cpu_features):
    schedule = Schedule(size=32, upscaling_steps=2, opt_steps=3)
    gpu = visualize(cuda_features, 7, 2, schedule, seed=1, precision="fp32")
    cpu = visualize(cpu_features, 7, 2, schedule, seed=1)
    assert gpu.activation_start == pytest.approx(cpu.activation_start, rel=1e-4)
    assert gpu.activation_final == pytest.approx(cpu.activation_final, rel=0.02)


def test_memory_does_not_grow_from_request_to_request(cuda_features):
    schedule = Schedule(size=56, upscaling_steps=6, opt_steps=4)
    visualize(cuda_features, 30, 1, schedule)
    allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    for f in range(2, 6):
        visualize(cuda_features, 30, f, schedule)
    assert torch.cuda.memory_allocated() <= allocated
    assert torch.cuda.memory_reserved() <= reserved


def test_no_host_sync_inside_the_optimization_loop(cuda_features):
    def syncs(opt_steps):
        schedule = Schedule(size=32, upscaling_steps=2, opt_steps=opt_steps)
        visualize(cuda_features, 13, 0, schedule)
        return host_syncs(lambda: visualize(cuda_features, 13, 0, schedule))
    few, many = syncs(4), syncs(36)
    assert many - few < 8, (few, many)  # 64 more steps: a sync per step would add 64


def test_handler_runs_on_the_gpu_it_is_given(model_dir):
    context = make_context("visualize", model_dir)
    context.system_properties["gpu_id"] = 0
    handler = FeatureVizHandler()
    handler.initialize(context)
    handler.made_with = ("visualize", model_dir)
    assert handler.service.device == torch.device("cuda:0") and handler.service.operation.precision == "tf32"
    body = {"body": {"layer": 7, "filter": 4, "size": 24, "upscaling_steps": 2, "opt_steps": 3, "seed": 9}}
    out, statuses, types, headers = call(handler, [body, {"body": {"layer": 7, "filter": 999}}])
    assert statuses == [200, 400] and types[0] == "image/png" and headers[0]["X-Cache"] == "miss"
    image = Image.open(io.BytesIO(out[0]))
    assert image.size == (28, 28) and image.text["precision"] == "tf32"
    assert json.loads(out[1])["field"] == "filter"
