"""The implementations ours is measured against: the seed article's loop as written, and lucent's
render_vis. Both on the engine's network and image helpers, so that only the algorithm differs."""
import sys
import types

import torch
import torch.nn.functional as F

from featureviz.model.network import denormalize, device_of, normalize
from featureviz.optim.param.pixel import Schedule, box_blur, start_noise, upscale


def seed_visualize(features, layer, filter, schedule=Schedule(), seed=0):
    """The article's FilterVisualizer.visualize, as written but for its hook, which stores the
    output itself (the article's torch.tensor copy lets no gradient reach the pixels today)."""
    stored = {}
    hook = features[layer].register_forward_hook(lambda m, i, o: stored.__setitem__("features", o))
    try:
        img = start_noise(schedule.size, seed).to(device_of(features))
        side = schedule.size
        for _ in range(schedule.upscaling_steps):
            img_var = normalize(img)[None].requires_grad_(True)
            optimizer = torch.optim.Adam([img_var], lr=schedule.lr, weight_decay=1e-6)
            for _ in range(schedule.opt_steps):
                optimizer.zero_grad()
                features(img_var)  # the whole network, every step
                loss = -stored["features"][0, filter].mean()
                loss.backward()
                optimizer.step()
            img = denormalize(img_var.detach()[0])
            output = img
            side = int(schedule.upscaling_factor * side)
            img = upscale(img, side)  # the article upscales after the last scale too
            if schedule.blur is not None:
                img = box_blur(img, schedule.blur)
        return output.clamp(0, 1)
    finally:
        hook.remove()


def lucent_visualize(model, layer, filter, **options):
    """lucent's render_vis, by default with its defaults (128 px FFT image, decorrelated colours,
    standard transforms, 512 Adam steps at lr 0.05, the whole model every step) on the same
    channel; `options` go to render_vis."""
    render = import_lucent().render
    image = render.render_vis(model, f"features_{layer}:{filter}", show_image=False, progress=False, **options)[-1]
    return torch.from_numpy(image[0]).permute(2, 0, 1).float()


def import_lucent():
    """lucent.optvis (torch-lucent 0.1.8, installed with --no-deps): with stand-ins for the
    notebook modules it imports, and for the three functions of kornia < 0.5 it calls (its pin
    on that kornia does not install on today's torch), written on torch's affine_grid."""
    for name in ("IPython", "IPython.display"):  # lucent imports them for notebooks only
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["IPython"].display = sys.modules["IPython.display"]
    if "kornia" not in sys.modules:
        kornia = types.ModuleType("kornia")
        kornia.__version__ = "0.4.1"
        kornia.get_rotation_matrix2d, kornia.warp_affine = _rotation_matrix2d, _warp_affine
        geometry, transform = types.ModuleType("kornia.geometry"), types.ModuleType("kornia.geometry.transform")
        transform.translate = _translate
        kornia.geometry, geometry.transform = geometry, transform
        sys.modules.update({"kornia": kornia, "kornia.geometry": geometry, "kornia.geometry.transform": transform})
    from lucent import optvis
    from lucent.optvis import param, render, transform  # noqa: F401
    return optvis


def _rotation_matrix2d(center, angle, scale):
    """kornia's (and OpenCV's) 2x3 matrix of a rotation by `angle` degrees about `center`, scaled."""
    a = torch.deg2rad(angle)
    alpha, beta = scale[:, 0] * torch.cos(a), scale[:, 0] * torch.sin(a)
    cx, cy = center[:, 0], center[:, 1]
    return torch.stack([torch.stack([alpha, beta, (1 - alpha) * cx - beta * cy], -1),
                        torch.stack([-beta, alpha, beta * cx + (1 - alpha) * cy], -1)], 1)


def _warp_affine(src, matrix, dsize):
    """kornia's warp_affine: dst(p) = src(matrix^-1 p), bilinear, zeros outside."""
    n, _, h, w = src.shape
    full = torch.cat([matrix.to(src), torch.tensor([[[0.0, 0.0, 1.0]]], dtype=src.dtype).expand(n, 1, 3)], 1)
    inverse = torch.linalg.inv(full)[:, :2]
    ys, xs = torch.meshgrid(torch.arange(dsize[0], dtype=src.dtype), torch.arange(dsize[1], dtype=src.dtype),
                            indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
    source = points @ inverse.transpose(1, 2)  # (n, h*w, 2) pixel coordinates in src
    grid = torch.stack([source[..., 0] / (w - 1) * 2 - 1, source[..., 1] / (h - 1) * 2 - 1], -1)
    return F.grid_sample(src, grid.view(n, dsize[0], dsize[1], 2), mode="bilinear", padding_mode="zeros",
                         align_corners=True)


def _translate(tensor, translation):
    n = tensor.shape[0]
    matrix = torch.zeros(n, 2, 3, dtype=tensor.dtype)
    matrix[:, 0, 0] = matrix[:, 1, 1] = 1
    matrix[:, :, 2] = translation.to(tensor.dtype)
    return _warp_affine(tensor, matrix, tensor.shape[-2:])
