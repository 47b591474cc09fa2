"""The images of single-image visualize requests, rendered by featureviz.optim.render: each
request's parameterization (the article's pixels, or lucent's spectrum), transforms and
objective; at a group shape G > 1 as one group of G (featureviz.optim.groups)."""
from ....gradients import gradients
from ....model.network import device_of
from ....optim.groups import render_group
from ....optim.param.fft import SpectrumImage
from ....optim.param.pixel import PixelImage
from ....optim.render import Render, render
from ....optim.transforms import NetworkInput, standard_transforms


def render_of(request, device) -> Render:
    """What a single-image request optimizes."""
    drawing, schedule = request.drawing, request.schedule
    if drawing.param == "pixel":
        return Render(PixelImage(schedule, request.seed, device), request.objective())
    to_network = NetworkInput(schedule.size)
    image = SpectrumImage(drawing.diversity, schedule.size, request.seed, drawing.decorrelate, schedule.opt_steps,
                          schedule.lr, to_network, device)
    random = standard_transforms(request.seed) if drawing.transforms == "standard" else []
    return Render(image, request.objective(), [*random, to_network])


def render_images(features, requests: list, precision: str, on_stage=None, pool_kernel: bool = True) -> list:
    """Single-image requests of one layer, schedule, group shape and drawing -> their
    Visualizations (optim.render's, `on_stage` as there)."""
    first = requests[0]
    if any(r.filters is not None or (r.layer, r.schedule, r.group, r.drawing) !=
           (first.layer, first.schedule, first.group, first.drawing) for r in requests):
        raise ValueError("render_images takes single-image requests of one layer, schedule, group shape and drawing")
    device = device_of(features)
    with gradients():  # the images' tensors are made here, also under a model server's inference_mode
        renders = [render_of(request, device) for request in requests]
        if first.group > 1:
            return render_group(features, renders, first.group, lambda: render_of(requests[-1], device), precision,
                                on_stage=on_stage, pool_kernel=pool_kernel)
        return render(features, renders, precision, on_stage=on_stage, pool_kernel=pool_kernel)
