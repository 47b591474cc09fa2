"""`visualize` requests drawn other than by the article's default (operations.visualize.drawing):
param fft by featureviz.optim.render_fft, one image (or diversity grid) at a time; param pixel
with objective neuron or negative by the article's method on that objective."""
from dataclasses import asdict
from functools import partial

from ....gradients import gradients
from ....optim.objective_kinds import ChannelObjective
from ....optim.objectives import FilterObjective
from ....optim.render import visualize_many
from ....optim.render_fft import draw


def run(features, requests: list, precision: str, on_scale=None) -> list:
    """Single-filter requests of one layer, schedule and drawing -> their Visualizations."""
    layer, schedule, drawing = requests[0].layer, requests[0].schedule, requests[0].drawing
    with gradients():
        if drawing.param == "pixel":
            objective_of = partial(_article_objective, kind=drawing.objective, negative=drawing.negative)
            return visualize_many(features, layer, [r.filter for r in requests], [r.seed for r in requests],
                                  schedule, precision, on_scale=on_scale, objective_of=objective_of)
        settings = drawing.engine(schedule)
        found = [draw(features, layer, r.filter, settings, r.seed) for r in requests]
    if on_scale is not None:  # one scale: its event once every image is done
        on_scale(0, schedule.size, [v.activation_final for v in found], [v.image for v in found])
    return found


def _article_objective(features, layer, filters, kind, negative):
    return ChannelObjective(FilterObjective(features, layer, filters), kind, negative)


def text(request) -> dict:
    """The PNG text of a request's drawing fields, none for the article's own."""
    if request.drawing.is_article():
        return {}
    return {name: str(value) for name, value in asdict(request.drawing).items() if value is not None}
