"""The `visualize` request: its fields, its compute limits, and the key of its cached image."""
import json
from dataclasses import asdict, dataclass, replace

from .. import __version__
from ..model.network import LAYER_COUNT
from ..optim.param import Schedule
from .cache import cache_key
from .checks import check_channels, check_side
from .drawing import FIELDS as DRAWING_FIELDS
from .drawing import DrawingFields, fields_for, parse_drawing
from .fields import BadRequest, Field, parse_fields, shown

MAX_SIDE = 1024  # largest image side any scale may reach
# Compute limit: pixels x Adam steps summed over scales, twice the default request's.
MAX_PIXEL_STEPS = 2 * sum(s * s for s in Schedule().sides()) * Schedule().opt_steps
MAX_FILTERS = 64  # `filters`: at most this many, and all of them at most 4x the single limit
MAX_FILTERS_PIXEL_STEPS = 4 * MAX_PIXEL_STEPS

FIELDS = [
    Field("layer", int, 40, 0, LAYER_COUNT - 1),
    Field("filter", int, low=0),
    Field("size", int, 56, 1, 512),
    Field("upscaling_steps", int, 12, 1, 30),
    Field("upscaling_factor", float, 1.2, 1.0, 4.0),
    Field("opt_steps", int, 20, 1, 500),
    Field("lr", float, 0.1, 0.0, 100.0, low_exclusive=True),
    Field("blur", int, 5, 1, 31, nullable=True),
    Field("seed", int, 0, 0, 2**32 - 1),
    Field("stream", bool, False),
    Field("preview", bool, False),
    *DRAWING_FIELDS,
]


@dataclass(frozen=True)
class VisualizeRequest:
    layer: int
    filter: int
    schedule: Schedule
    seed: int
    filters: tuple | None = None  # several filters: one image each, answered as a grid
    stream: bool = False  # progress events as the work goes, then the image (same bytes)
    preview: bool = False  # ... each scale's event with a small picture
    drawing: DrawingFields = DrawingFields()  # param, objective... (featureviz.service.drawing)

    def singles(self) -> list["VisualizeRequest"]:
        """The single-filter images this request stands for (how it is answered is not theirs)."""
        if self.filters is None:
            return [replace(self, stream=False, preview=False)]
        return [replace(self, filter=f, filters=None, stream=False, preview=False) for f in self.filters]

    def cache_key(self, **context) -> str:
        """Every field of a single-filter request, the engine's version, and `context` (weights,
        device, precision, model version)."""
        drawing = {} if self.drawing.is_article() else {"drawing": asdict(self.drawing)}
        return cache_key(engine=__version__, layer=self.layer, filter=self.filter, seed=self.seed,
                         **asdict(self.schedule), **drawing, **context)


def parse_filter_list(raw) -> tuple:
    """`filters` as a JSON list of integers, or text: "3,5,9" or "[3, 5, 9]"."""
    accepted = f"a list of 1 to {MAX_FILTERS} different integers, e.g. [3, 5, 9] or \"3,5,9\""
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json.loads(text) if text.startswith("[") else [int(part) for part in text.split(",")]
        except (ValueError, RecursionError):
            raise BadRequest("filters", f"{text[:40]!r} is not {accepted}") from None
    if (not isinstance(raw, list) or not 1 <= len(raw) <= MAX_FILTERS
            or any(isinstance(f, bool) or not isinstance(f, int) or f < 0 for f in raw)
            or len(set(raw)) != len(raw)):
        raise BadRequest("filters", f"{shown(raw, 60)} is not {accepted}")
    return tuple(raw)


def parse_visualize(fields: dict, model) -> VisualizeRequest:
    features = model.features
    filters = None
    if "filters" in fields:
        if "filter" in fields:
            raise BadRequest("filters", "send either filter or filters, not both")
        filters = parse_filter_list(fields["filters"])
        fields = {**{k: v for k, v in fields.items() if k != "filters"}, "filter": filters[0]}
    v = parse_fields(fields, fields_for(fields, FIELDS))
    layer, size = v["layer"], v["size"]
    check_channels(features, layer, filters or (v["filter"],), "filters" if filters else "filter")
    if v["preview"] and not v["stream"]:
        raise BadRequest("preview", "previews come with progress events: send stream: true too, or no preview")
    drawing = parse_drawing(v, features, layer, len(filters or ()))
    if drawing.param == "fft":
        schedule = Schedule(size, 1, v["upscaling_factor"], v["opt_steps"], v["lr"], None)
        return VisualizeRequest(layer, v["filter"], schedule, v["seed"], filters, v["stream"], v["preview"], drawing)
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
    return VisualizeRequest(layer, v["filter"], schedule, v["seed"], filters, v["stream"], v["preview"], drawing)
