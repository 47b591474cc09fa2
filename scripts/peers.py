"""The implementations ours is measured against: the seed article's loop as written, and lucent's
render_vis. Both on the engine's network and image helpers, so that only the algorithm differs."""
import sys
import types

import torch

from featureviz.model.network import denormalize, device_of, normalize
from featureviz.optim.param import Schedule, start_noise
from featureviz.optim.transform import box_blur, upscale


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


def lucent_visualize(model, layer, filter):
    """lucent's render_vis with its defaults (128 px FFT image, decorrelated colours, standard
    transforms, 512 Adam steps at lr 0.05, the whole model every step) on the same channel."""
    for name in ("IPython", "IPython.display"):  # lucent imports them for notebooks only
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["IPython"].display = sys.modules["IPython.display"]
    from lucent.optvis import render
    image = render.render_vis(model, f"features_{layer}:{filter}", show_image=False, progress=False)[-1]
    return torch.from_numpy(image[0]).permute(2, 0, 1).float()
