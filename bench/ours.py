"""Our engine as the measurements (and the tests) call it: the article's request, one filter or
several, and lucent's way of drawing, each built from featureviz.optim's pieces as the service
builds them (featureviz/service/operations/visualize/images.py)."""
from featureviz.model.network import device_of
from featureviz.optim.groups import render_group
from featureviz.optim.objectives import channel, diversity
from featureviz.optim.param.fft import SpectrumImage
from featureviz.optim.param.pixel import PixelImage, Schedule
from featureviz.optim.render import Render, Visualization, render
from featureviz.optim.transforms import NETWORK_SIDE, NetworkInput, standard_transforms


def article(features, layer: int, filter: int, schedule: Schedule = Schedule(), seed: int = 0) -> Render:
    """The article's image of `filter` at `layer`: its pixels over its scales, the channel's mean."""
    return Render(PixelImage(schedule, seed, device_of(features)), channel(layer, filter))


def visualize(features, layer: int, filter: int, schedule: Schedule = Schedule(), seed: int = 0,
              precision: str = "fp32", **options) -> Visualization:
    """A default visualize request's image (`options` go to optim.render.render)."""
    return render(features, [article(features, layer, filter, schedule, seed)], precision, **options)[0]


def visualize_many(features, layer: int, filters: list, seeds: list, schedule: Schedule = Schedule(),
                   precision: str = "fp32", **options) -> list[Visualization]:
    """Several filters' images, optimized together where a batch changes no image."""
    _one_seed_each(filters, seeds)
    return render(features, [article(features, layer, f, schedule, s) for f, s in zip(filters, seeds)], precision,
                  **options)


def visualize_group(features, layer: int, filters: list, seeds: list, group_size: int,
                    schedule: Schedule = Schedule(), precision: str = "fp32", **options) -> list[Visualization]:
    """Several filters' images in one group of the fixed shape `group_size` (optim.groups)."""
    _one_seed_each(filters, seeds)
    renders = [article(features, layer, f, schedule, s) for f, s in zip(filters, seeds)]
    return render_group(features, renders, group_size, lambda: article(features, layer, filters[-1], schedule,
                                                                         seeds[-1]), precision, **options)


def _one_seed_each(filters, seeds):
    if len(filters) != len(seeds):
        raise ValueError("one seed per filter")


def draw(features, layer: int, filter: int, size: int = 128, steps: int = 512, lr: float = 0.05, seed: int = 0,
         decorrelate: bool = True, transforms: bool = True, images: int = 1, diversity_weight: float = 100.0,
         network_side: int = NETWORK_SIDE, precision: str = "fp32", objective=None) -> Visualization:
    """lucent's way of drawing (a visualize request with param: fft): the channel, or `objective`;
    with `images` > 1 less their Gram similarity times `diversity_weight`."""
    to_network = NetworkInput(size, network_side)
    image = SpectrumImage(images, size, seed, decorrelate, steps, lr, to_network, device_of(features))
    objective = objective or channel(layer, filter)
    if images > 1:
        objective = objective + diversity_weight * diversity(layer)
    random = standard_transforms(seed) if transforms else []
    return render(features, [Render(image, objective, [*random, to_network])], precision)[0]
