"""Engine unit tests at tiny sizes, on seeded random weights."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.support import ROOT
from tests.support.reference import reference_layer_output
from featureviz.attribution.activations import channel_means, top_channels
from featureviz.model.geometry import conv_flops, min_input_side, output_channels, output_side
from featureviz.model.lean import single_channel
from featureviz.model.pool_relu import PoolReLU
from featureviz.model.network import denormalize, normalize, truncated
from featureviz.optim import precision
from featureviz.optim.batching import every_side
from featureviz.optim.param import Schedule, start_noise
from featureviz.optim.render import visualize, visualize_many
from featureviz.optim.transform import box_blur, upscale

TINY = Schedule(size=16, upscaling_steps=3, upscaling_factor=1.2, opt_steps=4, lr=0.1, blur=3)


def test_article_layer_indices(features):
    # The article counts vgg16_bn().features: 7 conv2_1, 14 conv3_1, 20 conv3_3, 30 conv4_3, 40 conv5_3.
    convs = {7: (64, 128), 14: (128, 256), 20: (256, 256), 30: (512, 512), 40: (512, 512)}
    for index, (cin, cout) in convs.items():
        assert isinstance(features[index], torch.nn.Conv2d)
        assert (features[index].in_channels, features[index].out_channels) == (cin, cout)
    assert isinstance(features[41], torch.nn.BatchNorm2d) and isinstance(features[42], torch.nn.ReLU)
    assert len(features) == 44


def test_layer_geometry(features):
    assert output_channels(features, 0) == 64
    assert output_channels(features, 43) == 512
    assert output_side(features, 42, 224) == 14 and output_side(features, 43, 224) == 7
    assert min_input_side(features, 40) == 16 and min_input_side(features, 43) == 32
    assert min_input_side(features, 5) == 1


def test_conv_flops_count_the_lean_networks_convolutions_through_its_fused_pools(features):
    # layer 7 = conv2_1 on a 32 px input: conv1_1 (3 -> 64) and conv1_2 (64 -> 64) at 32 px, then the
    # pool (fused with its ReLU in the lean network) and conv2_1 at 16 px, one channel in the lean one
    lean = single_channel(features, 7, 5)
    assert any(isinstance(m, PoolReLU) for m in lean)
    assert conv_flops(lean, 32) == 2 * 9 * (3 * 64 * 32**2 + 64 * 64 * 32**2 + 64 * 1 * 16**2)
    assert conv_flops(features[:8], 32) == 2 * 9 * (3 * 64 * 32**2 + 64 * 64 * 32**2 + 64 * 128 * 16**2)


def test_truncated_at_a_layer_gives_its_own_output_despite_in_place_relus(features, state_dict):
    # features[1] (BatchNorm) is followed by an in-place ReLU in the full network; cut at the
    # layer, the output is the layer's own, negative values included.
    x = normalize(torch.rand(1, 3, 32, 32))
    expected = reference_layer_output(state_dict, 1, x)
    assert (expected < 0).any()
    with torch.no_grad():
        assert torch.allclose(truncated(features, 1)(x), expected, atol=1e-5)
        assert torch.allclose(truncated(features, 7)(x), reference_layer_output(state_dict, 7, x), atol=1e-5)


def test_gradient_reaches_the_pixels(features):
    x = normalize(start_noise(16, 0))[None].requires_grad_(True)
    truncated(features, 7)(x)[0, 12].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_schedule_sizes_follow_int_factor_times_side():
    assert Schedule().sides() == [56, 67, 80, 96, 115, 138, 165, 198, 237, 284, 340, 408]
    assert Schedule(size=10, upscaling_steps=4, upscaling_factor=1.5).sides() == [10, 15, 22, 33]


@pytest.mark.parametrize("layer, filter", [(7, 12), (14, 1), (40, 3)])
def test_visualize_raises_the_activation_and_returns_the_last_scale(features, layer, filter):
    result = visualize(features, layer, filter, TINY, seed=0)
    assert result.image.shape == (3, TINY.sides()[-1], TINY.sides()[-1])
    assert 0 <= result.image.min() and result.image.max() <= 1
    # Random weights give small activations deep in the network: a clear relative rise.
    assert result.activation_final > result.activation_start + 0.5 * abs(result.activation_start) + 1e-3
    assert len(result.activation_per_scale) == TINY.upscaling_steps


def test_activation_reported_is_that_of_the_returned_image(features, state_dict):
    result = visualize(features, 7, 12, TINY, seed=0)
    out = reference_layer_output(state_dict, 7, normalize(result.image)[None])
    assert out[0, 12].mean().item() == pytest.approx(result.activation_final, rel=1e-4, abs=1e-5)


def test_bf16_optimizes_yet_reports_the_fp32_activation_of_its_image(features, state_dict):
    result = visualize(features, 7, 12, TINY, seed=0, precision="bf16")
    fp32 = visualize(features, 7, 12, TINY, seed=0)
    assert not torch.equal(result.image, fp32.image)  # the steps did run in bf16
    out = reference_layer_output(state_dict, 7, normalize(result.image)[None])
    assert out[0, 12].mean().item() == pytest.approx(result.activation_final, rel=1e-4, abs=1e-5)
    assert result.activation_final > result.activation_start + 0.5 * abs(result.activation_start)


def test_an_unknown_precision_is_refused_before_any_work(features):
    with pytest.raises(ValueError, match="fp16"):
        visualize(features, 7, 12, TINY, precision="fp16")


def test_the_bf16_probe_leaves_the_threads_and_the_global_generator_as_they_were():
    threads = torch.get_num_threads()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    with torch.inference_mode():  # as BaseHandler runs its steps
        speedup = precision.bf16_speedup.__wrapped__(channels=8, side=16, rounds=1)
    assert speedup > 0 and torch.get_num_threads() == threads and torch.equal(torch.rand(3), expected)


def test_auto_precision_measures_bf16_slower_where_onednn_has_no_bf16_instructions():
    """oneDNN capped below AVX512-BF16 emulates bf16, as on a processor without it: whatever the
    processor's flags say, the measurement finds bf16 slower and `auto` keeps fp32."""
    code = ("import torch; from featureviz.optim import precision as p; "
            "print(p.bf16_speedup(), p.default_precision(torch.device('cpu')))")
    environ = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX512_CORE",
                   PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    speedup, chosen = done.stdout.split()
    assert 0 < float(speedup) < precision.MIN_BF16_SPEEDUP and chosen == "fp32"


def test_same_seed_same_image_other_seed_other_image(features):
    a = visualize(features, 7, 12, TINY, seed=3).image
    b = visualize(features, 7, 12, TINY, seed=3).image
    c = visualize(features, 7, 12, TINY, seed=4).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_blur_none_and_blur_change_the_result(features):
    plain = visualize(features, 7, 12, Schedule(16, 2, 1.2, 2, 0.1, None)).image
    blurred = visualize(features, 7, 12, Schedule(16, 2, 1.2, 2, 0.1, 5)).image
    assert plain.shape == blurred.shape and not torch.equal(plain, blurred)


def test_start_noise_is_the_articles_uint8_range():
    noise = start_noise(56, 0)
    assert noise.shape == (3, 56, 56)
    levels = (noise * 255).round()
    assert levels.min() >= 150 and levels.max() <= 179
    assert torch.allclose(levels, noise * 255, atol=1e-4)


def test_box_blur_equals_a_reflect101_mean_filter():
    img = torch.rand(3, 9, 11)
    k = 5
    padded = np.pad(img.numpy(), ((0, 0), (2, 2), (2, 2)), mode="reflect")  # numpy reflect = cv2 REFLECT_101
    expected = np.zeros_like(img.numpy())
    for y in range(9):
        for x in range(11):
            expected[:, y, x] = padded[:, y:y + k, x:x + k].mean(axis=(1, 2))
    assert np.allclose(box_blur(img, k).numpy(), expected, atol=1e-6)
    assert torch.equal(box_blur(img, 1), img)


def test_upscale_is_bicubic_to_the_new_side():
    img = torch.rand(3, 10, 10)
    up = upscale(img, 12)
    assert up.shape == (3, 12, 12)
    flat = torch.full((3, 10, 10), 0.3)
    assert torch.allclose(upscale(flat, 17), torch.full((3, 17, 17), 0.3), atol=1e-6)


def test_normalize_round_trip():
    img = torch.rand(3, 5, 5)
    assert torch.allclose(denormalize(normalize(img)), img, atol=1e-6)


def test_channel_means_equal_an_independent_forward_pass(features, state_dict):
    images = torch.rand(2, 3, 32, 32)
    for layer in (2, 20, 42):
        means = channel_means(features, layer, images)
        reference = reference_layer_output(state_dict, layer, normalize(images)).mean(dim=(2, 3))
        assert means.shape == (2, output_channels(features, layer))
        assert torch.allclose(means, reference, atol=1e-5)


def test_top_channels_are_sorted_highest_first():
    means = torch.tensor([0.1, 3.0, -1.0, 2.0])
    assert top_channels(means, 2) == [{"channel": 1, "mean": 3.0}, {"channel": 3, "mean": 2.0}]
    assert len(top_channels(torch.rand(512))) == 10


@pytest.mark.parametrize("layer, channel", [(0, 5), (2, 63), (6, 1), (7, 12), (41, 300), (42, 7), (43, 511)])
def test_single_channel_network_equals_the_full_layer_channel(features, state_dict, layer, channel):
    x = normalize(torch.rand(2, 3, 32, 32))
    with torch.no_grad():
        out = single_channel(features, layer, channel)(x)
    expected = reference_layer_output(state_dict, layer, x)[:, channel:channel + 1]
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-4, rtol=1e-4)
    assert all(not p.requires_grad for p in single_channel(features, layer, channel).parameters())


@pytest.mark.parametrize("layer, channel", [(1, 3), (6, 1), (7, 12), (23, 9), (40, 7)])
def test_single_channel_network_has_the_full_layers_input_gradient(features, state_dict, layer, channel):
    """What the optimization follows: d mean(channel) / d pixels, against a fresh torchvision
    vgg16_bn run module by module (BatchNorms folded and ReLUs moved after max-pools give the
    same gradient up to rounding)."""
    from torchvision.models import vgg16_bn
    reference = vgg16_bn(weights=None)
    reference.load_state_dict(state_dict)
    reference.eval()
    x = normalize(torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(layer)))

    def gradient(net):
        pixels = x.clone().requires_grad_(True)
        net(pixels).mean().backward()
        return pixels.grad
    lean = gradient(single_channel(features, layer, channel))
    expected = gradient(lambda v: reference.features[: layer + 1](v)[:, channel])
    assert expected.abs().max() > 0
    assert torch.allclose(lean, expected, atol=1e-5 * expected.abs().max().item(), rtol=1e-4)


def test_single_channel_network_runs_no_batch_norm_and_no_relu_before_a_pool(features):
    net = single_channel(features, 43, 5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net)
    assert [type(m) for m in net].count(PoolReLU) == 5 and not any(isinstance(m, torch.nn.MaxPool2d) for m in net)
    assert all(not isinstance(net[i + 1], torch.nn.MaxPool2d) for i, m in enumerate(net[:-1])
               if isinstance(m, torch.nn.ReLU))


def test_visualize_request_gets_gradients_under_inference_mode(engine):
    from featureviz.service.operations.visualize.request import parse_visualize
    from featureviz.service.operations.visualize.run import run_visualize
    request = parse_visualize({"layer": 7, "filter": 12, "size": 16, "upscaling_steps": 2, "opt_steps": 3}, engine)
    with torch.inference_mode():
        under = run_visualize(engine.features, [request])[0]
    plain = run_visualize(engine.features, [request])[0]
    assert torch.equal(under.image, plain.image) and under.activation_final > under.activation_start


def test_render_asks_its_batching_policy_at_each_side_and_follows_it(features):
    """The render loop takes its batching policy as it takes its objective: the benchmarks pass
    every_side to compare with the engine's exact batches."""
    schedule = Schedule(size=20, upscaling_steps=3, opt_steps=3)
    asked = []

    def recorded(network, n, side, device, precision):
        asked.append((n, side, precision))
        return every_side(network, n, side, device, precision)

    together = visualize_many(features, 7, [5, 9], [3, 3], schedule, batch_when=recorded)
    assert asked == [(2, side, "fp32") for side in schedule.sides()]
    assert all(result.batched_sides == schedule.sides() for result in together)
    for result, filter in zip(together, (5, 9)):
        alone = visualize(features, 7, filter, schedule, seed=3)
        assert result.image.shape == alone.image.shape
        assert result.activation_final > result.activation_start
    never = visualize_many(features, 7, [5, 9], [3, 3], schedule, batch_when=lambda *args: False)
    assert never[0].batched_sides == [] and torch.equal(never[0].image, visualize(features, 7, 5, schedule, seed=3).image)


def test_bf16_gives_the_same_image_for_the_same_request(features):
    """The result cache and `filters` rely on it, whatever the default precision."""
    a = visualize(features, 14, 3, TINY, seed=5, precision="bf16")
    b = visualize(features, 14, 3, TINY, seed=5, precision="bf16")
    assert torch.equal(a.image, b.image) and a.activation_final == b.activation_final
