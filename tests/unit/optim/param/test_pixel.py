"""featureviz.optim.param.pixel: the multi-scale schedule, the noise start, and what happens between
scales (bicubic upscale, box blur) against independent computations."""
import numpy as np
import torch

from featureviz.optim.param.pixel import Schedule, box_blur, start_noise, upscale


def test_schedule_sizes_follow_int_factor_times_side():
    assert Schedule().sides() == [56, 67, 80, 96, 115, 138, 165, 198, 237, 284, 340, 408]
    assert Schedule(size=10, upscaling_steps=4, upscaling_factor=1.5).sides() == [10, 15, 22, 33]


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
