"""The `visualize` request: its fields, its compute limits, and the key of its cached image."""
from dataclasses import asdict, dataclass, replace

from .... import __version__
from ....model.network import LAYER_COUNT
from ....optim.param.pixel import Schedule
from ...cache import cache_key
from ...checks import check_channels, check_side
from ...fields import Field, parse_fields
from ...refusals import BadRequest
from . import objective_field
from .drawing import FIELDS as DRAWING_FIELDS
from .drawing import Drawing, fields_for, parse_drawing
from .filter_sets import FiltersLimit, check_limit, parse_filter_set

MAX_SIDE = 1024  # largest image side any scale may reach
# Compute limit: pixels x Adam steps summed over scales, twice the default request's.
MAX_PIXEL_STEPS = 2 * sum(s * s for s in Schedule().sides()) * Schedule().opt_steps
# `filters`: by default (a CPU's compute limit, filter_sets.FiltersLimit) at most this many, and
# all of them at most 4x the single limit.
MAX_FILTERS = FiltersLimit().images
MAX_FILTERS_PIXEL_STEPS = FiltersLimit().pixel_steps

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
    Field("output", str, "png", choices=("png", "zip")),
    *DRAWING_FIELDS,
]


@dataclass(frozen=True)
class VisualizeRequest:
    layer: int | None  # None where the objective is a list of terms, which name their layers
    filter: int | None
    schedule: Schedule
    seed: int
    filters: tuple | None = None  # several filters: one image each, answered as a grid
    stream: bool = False  # progress events as the work goes, then the image (same bytes)
    preview: bool = False  # ... each scale's event with a small picture
    output: str = "png"  # with filters: "zip", one PNG per filter instead of the grid
    group: int = 1  # the group shape its image is optimized at (optim.groups); 1: alone, exact
    drawing: Drawing = Drawing()  # param, objective... (.drawing)

    def singles(self, group_size: int = 1) -> list["VisualizeRequest"]:
        """The single-filter images this request stands for (how it is answered is not theirs):
        a `filters` request's are optimized in groups of `group_size`, a single request's alone."""
        if self.filters is None:
            return [replace(self, stream=False, preview=False)]
        group = group_size if self.drawing.is_article() else 1  # drawn.py draws each image alone
        return [replace(self, filter=f, filters=None, stream=False, preview=False, output="png", group=group)
                for f in self.filters]

    def objective(self):
        """The featureviz.optim Objective its image raises."""
        return objective_field.objective_of(self.drawing, self.layer, self.filter)

    def cache_key(self, **context) -> str:
        """Every field of a single-filter request, the group shape where it is not 1, the drawing
        and its objective's terms where it is not the article's, the engine's version, and
        `context` (weights, device, precision, model version)."""
        group = {"group": self.group} if self.group > 1 else {}
        drawing = {} if self.drawing.is_article() else {
            "drawing": asdict(self.drawing),
            "terms": [[weight, type(term).__name__, asdict(term)] for weight, term in self.objective().terms]}
        return cache_key(engine=__version__, layer=self.layer, filter=self.filter, seed=self.seed,
                         **asdict(self.schedule), **group, **drawing, **context)


def parse_visualize(fields: dict, model, limit: FiltersLimit = FiltersLimit()) -> VisualizeRequest:
    """`limit`: the deployment's compute limit on `filters` (a CPU's by default)."""
    features = model.features
    terms = None
    if "objective" in fields and objective_field.is_list(fields["objective"]):
        terms = objective_field.parse_terms(fields)
        fields = {**{k: v for k, v in fields.items() if k != "objective"}, "filter": 0}
    filters = asked = None
    if "filters" in fields:
        if "filter" in fields:
            raise BadRequest("filters", "send either filter or filters, not both")
        asked = parse_filter_set(fields["filters"], limit)
        fields = {**{k: v for k, v in fields.items() if k != "filters"}, "filter": (asked.listed or (0,))[0]}
    v = parse_fields(fields, fields_for(fields, FIELDS))
    layer, size = v["layer"], v["size"]
    if terms is not None:
        v["objective"] = objective_field.canonical(terms, v, features)
        layer, v["layer"], v["filter"] = objective_field.deepest_layer(v["objective"]), None, None
    if asked is not None:
        filters = asked.filters(features, layer)
    if terms is None:
        check_channels(features, layer, filters or (v["filter"],), "filters" if filters else "filter")
    if v["preview"] and not v["stream"]:
        raise BadRequest("preview", "previews come with progress events: send stream: true too, or no preview")
    drawing = parse_drawing(v, features, layer, len(filters or ()))
    if drawing.param == "fft":
        schedule = Schedule(size, 1, v["upscaling_factor"], v["opt_steps"], v["lr"], None)
        if filters:  # the count; parse_drawing bounds param fft's work
            check_limit(asked, filters, layer, 0, limit)
        return _request(v, schedule, filters, drawing)
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
    if filters:
        check_limit(asked, filters, layer, work, limit)
    return _request(v, schedule, filters, drawing)


def _request(v: dict, schedule: Schedule, filters, drawing: Drawing) -> VisualizeRequest:
    if v["output"] == "zip" and not filters:
        raise BadRequest("output", "zip answers a filters request with one PNG per filter; send filters, or "
                                   "output: png for one filter")
    return VisualizeRequest(v["layer"], v["filter"], schedule, v["seed"], filters, v["stream"], v["preview"],
                            v["output"], drawing=drawing)
