"""featureviz.optim.transform: box blur and bicubic upscale against independent computations."""
import numpy as np
import torch

from featureviz.optim.transform import box_blur, upscale


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
