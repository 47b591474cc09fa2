"""The served operations: their fields, compute limits, and the engine calls behind them."""
import json
from dataclasses import asdict, dataclass, replace

import torch

from . import __version__
from .activations import channel_means, top_channels
from .cache import cache_key
from .fields import BadRequest, Field, parse_fields
from .image import center_square, decode_image
from .network import LAYER_COUNT, min_input_side, output_channels
from .render import Schedule, visualize_many

LAYER_RANGE = (0, LAYER_COUNT - 1)
MAX_SIDE = 1024  # largest image side any scale may reach
# Compute limit: pixels x Adam steps summed over scales, twice the default request's 10.8 M.
MAX_PIXEL_STEPS = 2 * sum(s * s for s in Schedule().sides()) * Schedule().opt_steps
MAX_FILTERS = 64  # `filters`: at most this many, and all of them at most 4x the single limit
MAX_FILTERS_PIXEL_STEPS = 4 * MAX_PIXEL_STEPS

VISUALIZE_FIELDS = [
    Field("layer", int, 40, *LAYER_RANGE),
    Field("filter", int, low=0),
    Field("size", int, 56, 1, 512),
    Field("upscaling_steps", int, 12, 1, 30),
    Field("upscaling_factor", float, 1.2, 1.0, 4.0),
    Field("opt_steps", int, 20, 1, 500),
    Field("lr", float, 0.1, 0.0, 100.0, low_exclusive=True),
    Field("blur", int, 5, 1, 31, nullable=True),
    Field("seed", int, 0, 0, 2**32 - 1),
]

ACTIVATIONS_FIELDS = [
    Field("layer", int, 42, *LAYER_RANGE),
    Field("size", int, 224, 1, 1024),
]
IMAGE_FIELDS = ("data", "body")  # where an upload arrives: form/gRPC field, or the raw body


@dataclass(frozen=True)
class VisualizeRequest:
    layer: int
    filter: int
    schedule: Schedule
    seed: int
    filters: tuple | None = None  # several filters: one image each, answered as a grid

    def singles(self) -> list["VisualizeRequest"]:
        """The single-filter requests this one stands for."""
        if self.filters is None:
            return [self]
        return [replace(self, filter=f, filters=None) for f in self.filters]


@dataclass(frozen=True)
class ActivationsRequest:
    layer: int
    size: int
    image: torch.Tensor  # (3, size, size) in [0, 1]


def parse_filter_list(raw) -> tuple:
    """`filters` as a JSON list of integers, or text: "3,5,9" or "[3, 5, 9]"."""
    accepted = f"a list of 1 to {MAX_FILTERS} different integers, e.g. [3, 5, 9] or \"3,5,9\""
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json.loads(text) if text.startswith("[") else [int(part) for part in text.split(",")]
        except ValueError:
            raise BadRequest("filters", f"{text[:40]!r} is not {accepted}") from None
    if (not isinstance(raw, list) or not 1 <= len(raw) <= MAX_FILTERS
            or any(isinstance(f, bool) or not isinstance(f, int) or f < 0 for f in raw)
            or len(set(raw)) != len(raw)):
        raise BadRequest("filters", f"{str(raw)[:60]} is not {accepted}")
    return tuple(raw)


def parse_visualize(fields: dict, features) -> VisualizeRequest:
    filters = None
    if "filters" in fields:
        if "filter" in fields:
            raise BadRequest("filters", "send either filter or filters, not both")
        filters = parse_filter_list(fields["filters"])
        fields = {**{k: v for k, v in fields.items() if k != "filters"}, "filter": filters[0]}
    v = parse_fields(fields, VISUALIZE_FIELDS)
    layer, size = v["layer"], v["size"]
    channels = output_channels(features, layer)
    for f in filters or (v["filter"],):
        if f >= channels:
            raise BadRequest("filters" if filters else "filter",
                             f"{f} is out of range; layer {layer} has {channels} channels: "
                             f"expected {'integers' if filters else 'an integer'} in 0..{channels - 1}")
    check_side(features, layer, size)
    if v["blur"] is not None and v["blur"] > size:
        raise BadRequest("blur", f"{v['blur']} is larger than the image ({size} px); expected at most {size} or null")
    schedule = Schedule(size, v["upscaling_steps"], v["upscaling_factor"], v["opt_steps"], v["lr"], v["blur"])
    sides = schedule.sides()
    if sides[-1] > MAX_SIDE:
        raise BadRequest("upscaling_steps", f"the last scale would be {sides[-1]} px wide; at most {MAX_SIDE} "
                                            "(lower size, upscaling_steps or upscaling_factor)")
    work = sum(s * s for s in sides) * schedule.opt_steps
    if work > MAX_PIXEL_STEPS:
        raise BadRequest("opt_steps", f"the request needs {work} pixel-steps (pixels x opt_steps over all "
                                      f"scales); at most {MAX_PIXEL_STEPS}")
    if filters and work * len(filters) > MAX_FILTERS_PIXEL_STEPS:
        raise BadRequest("filters", f"{len(filters)} filters need {work * len(filters)} pixel-steps; "
                                    f"at most {MAX_FILTERS_PIXEL_STEPS}: send fewer filters")
    return VisualizeRequest(layer, v["filter"], schedule, v["seed"], filters)


def parse_upload(fields: dict, specs: list[Field]) -> tuple[dict, torch.Tensor]:
    """An image request's fields -> (validated values, (3, size, size) image in [0, 1]).
    `specs` must include `size`: the shorter side is resized to it and the center cropped."""
    uploads = [name for name in IMAGE_FIELDS if name in fields]
    if not uploads:
        raise BadRequest("data", "missing; send a JPEG or PNG image as the body or as the field 'data'")
    data = fields[uploads[0]]
    if not isinstance(data, (bytes, bytearray)):
        raise BadRequest("data", "expected JPEG or PNG bytes (raw body or multipart field 'data'), got JSON")
    values = parse_fields(fields, specs, ignore=IMAGE_FIELDS)
    try:
        image = decode_image(bytes(data))
    except ValueError as error:
        raise BadRequest("data", str(error).removeprefix("data: "), getattr(error, "status", 400)) from None
    return values, center_square(image, values["size"])


def check_side(features, layer: int, size: int):
    smallest = min_input_side(features, layer)
    if size < smallest:
        raise BadRequest("size", f"{size} is too small for layer {layer}: its output would be empty; "
                                 f"expected at least {smallest}")


def parse_activations(fields: dict, features) -> ActivationsRequest:
    values, image = parse_upload(fields, ACTIVATIONS_FIELDS)
    check_side(features, values["layer"], values["size"])
    return ActivationsRequest(values["layer"], values["size"], image)


def visualize_cache_key(request: VisualizeRequest, **context) -> str:
    """Every field of the request, the engine's version, and `context` (weights, device, ...)."""
    return cache_key(engine=__version__, layer=request.layer, filter=request.filter, seed=request.seed,
                     **asdict(request.schedule), **context)


def run_visualize(features, requests: list[VisualizeRequest], precision: str = "fp32") -> list:
    """Single-filter requests of one layer and schedule -> their Visualizations, optimized
    together where that changes no image (render.visualize_many)."""
    layer, schedule = requests[0].layer, requests[0].schedule
    if any(r.filters is not None or (r.layer, r.schedule) != (layer, schedule) for r in requests):
        raise ValueError("run_visualize takes single-filter requests of one layer and schedule")
    # Gradients even when a caller runs us under no_grad or inference_mode (as BaseHandler does).
    with torch.inference_mode(False), torch.enable_grad():
        return visualize_many(features, layer, [r.filter for r in requests], [r.seed for r in requests],
                              schedule, precision)


def visualize_batches(requests: list[VisualizeRequest], max_images: int) -> list[list[VisualizeRequest]]:
    """Single-filter requests -> the batches run_visualize takes: same layer and schedule, in
    order of arrival, at most `max_images` each."""
    groups = {}
    for request in requests:
        groups.setdefault((request.layer, request.schedule), []).append(request)
    return [group[i:i + max_images] for group in groups.values() for i in range(0, len(group), max_images)]


def run_activations(features, requests: list[ActivationsRequest]) -> list[dict]:
    """Requests of the same layer and size share one forward pass."""
    results = [None] * len(requests)
    groups = {}
    for i, request in enumerate(requests):
        groups.setdefault((request.layer, request.size), []).append(i)
    for (layer, _), indices in groups.items():
        means = channel_means(features, layer, torch.stack([requests[i].image for i in indices]))
        for i, row in zip(indices, means):
            results[i] = {"layer": layer, "channels": row.numel(), "means": row.tolist(),
                          "top": top_channels(row)}
    return results
