"""featureviz.optim.param: the multi-scale schedule and the noise start."""
import torch

from featureviz.optim.param import Schedule, start_noise


def test_schedule_sizes_follow_int_factor_times_side():
    assert Schedule().sides() == [56, 67, 80, 96, 115, 138, 165, 198, 237, 284, 340, 408]
    assert Schedule(size=10, upscaling_steps=4, upscaling_factor=1.5).sides() == [10, 15, 22, 33]


def test_start_noise_is_the_articles_uint8_range():
    noise = start_noise(56, 0)
    assert noise.shape == (3, 56, 56)
    levels = (noise * 255).round()
    assert levels.min() >= 150 and levels.max() <= 179
    assert torch.allclose(levels, noise * 255, atol=1e-4)
