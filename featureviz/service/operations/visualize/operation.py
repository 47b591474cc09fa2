"""`visualize`, a batch end to end: every single image its requests need (their own and their
`filters`') is looked up in the result cache; identical ones are computed once; the rest are
rendered in groups: by layer, schedule and drawing, `batch_images` at a time (each exactly its
image alone: featureviz.optim.render), or where the group shape G is more than 1 a `filters`
request's in groups of exactly G (featureviz.optim.groups); then cached one by one. A `filters`
request gets the labelled grid of its images, or with output: "zip" one PNG per filter.

It owns its settings: the arithmetic (precision), the CPU's kernel, how many images share a
batch, the group shape, and the compute limit on `filters`."""
import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor

from ....model import pool_relu
from ....optim import precision as arithmetic
from ....pictures import grid_png, to_png
from ...answers import Result
from ...metrics import Metric
from ...refusals import InternalError, Refusal
from ...retry import each_alone_on_failure
from ...settings import Setting, auto_or, positive_float, positive_int
from ..base import Operation
from .filter_sets import FiltersLimit
from .images import render_images
from .progress import objective_value, scale_events
from .request import FIELDS, VisualizeRequest, parse_visualize
from .zipped import png_name, zip_of

logger = logging.getLogger(__name__)
# group_size auto on a GPU (docs/performance.md, "Groups of a fixed shape")
GPU_GROUP_SIZE = 16


def _precision(raw) -> str:
    return "auto" if str(raw) == "auto" else arithmetic.check(str(raw))


class Visualize(Operation):
    name = "visualize"
    fields = FIELDS
    memory_hint = "lower size, upscaling_steps or upscaling_factor"
    settings = [
        Setting("precision", "auto", _precision, "fp32, tf32, bf16 or auto"),
        Setting("batch_images", 4, positive_int, "a positive integer"),
        Setting("group_size", "auto", auto_or(positive_int), "a positive integer or auto"),
        Setting("max_filters", "auto", auto_or(positive_int), "a positive integer or auto"),
        Setting("max_filters_work", "auto", auto_or(positive_float), "a positive number or auto"),
    ]

    def configure(self, settings, device):
        precision, self.batch_images, group_size, max_filters, max_filters_work = (settings[s] for s in self.settings)
        self.device = device
        self.precision = arithmetic.default_precision(device) if precision == "auto" else precision
        # A GPU optimizes a `filters` request's images in groups of one fixed shape (optim.groups);
        # the CPU alone and in exact groups, as a larger group is no faster there
        # (docs/performance.md, "Batching: exact batches").
        self.group_size = (GPU_GROUP_SIZE if device.type == "cuda" else 1) if group_size == "auto" else group_size
        self.filters_limit = FiltersLimit.for_device(device.type, max_filters, max_filters_work)
        # Built now (a second, once per machine) rather than in the first request.
        self.pool_kernel = device.type == "cpu" and pool_relu.kernel_available()
        # On a GPU a group's PNGs are encoded by threads while the next group computes: Pillow lets
        # go of Python's lock as it compresses (docs/performance.md, "PNG encoding beside the GPU");
        # the CPU has no time to spare.
        self.encoders = ThreadPoolExecutor(min(4, os.cpu_count() or 1)) if device.type == "cuda" else None

    def describe(self):
        return f"{self.precision}; C kernels: {'pool_relu' if self.pool_kernel else 'none'}"

    def cache_context(self) -> dict:
        """What a cached image depends on besides its request."""
        return {"weights": self.provenance.weights["sha256"], "device": self.device.type,
                "precision": self.precision, "model_version": self.provenance.version}

    def parse(self, fields):
        return parse_visualize(fields, self.model, self.filters_limit)

    def run(self, requests, channel):
        """Each request's Result (a PNG, cache hit or miss) or refusal."""
        keys = {single: single.cache_key(**self.cache_context())
                for r in requests for single in r.singles(self.group_size)}
        images = {}  # single-image request (identical ones are equal) -> (PNG, cache hit) or Refusal
        for single, key in keys.items():
            cached = self.cache.get(key) if self.cache else None
            if cached is not None:
                images[single] = (cached, True)
        listeners = {}  # single-image request -> the streamed requests that wait for it
        for request in requests:
            if request.stream:
                for single in request.singles(self.group_size):
                    listeners.setdefault(single, []).append(request)
        groups = optimization_groups([single for single in keys if single not in images], self.batch_images)
        groups_of = {}  # id of a streamed request -> the groups, by index, that hold its images
        for k, group in enumerate(groups):
            for request_id in {id(r) for single in group for r in listeners.get(single, [])}:
                groups_of.setdefault(request_id, []).append(k)
        made = {}  # single-image request -> PNG bytes (or their Future, being encoded) or Refusal
        for k, group in enumerate(groups):
            made.update(zip(group, each_alone_on_failure(
                lambda some: self._pngs(some, channel, scale_events(channel, some, listeners, k, groups_of)),
                group, self.memory_hint)))
        for single, png in made.items():
            png = _encoded(png)
            images[single] = png if isinstance(png, Refusal) else (png, False)
            if self.cache and not isinstance(png, Refusal):
                self.cache.put(keys[single], png)
        return [self._result(request, [images[single] for single in request.singles(self.group_size)])
                for request in requests]

    def _pngs(self, group: list[VisualizeRequest], channel, on_stage=None) -> list[bytes]:
        """A group of single-image requests (one layer, schedule and drawing) -> a PNG each."""
        start = time.perf_counter()
        results = render_images(self.model.features, group, self.precision, on_stage, self.pool_kernel)
        layer, schedule = group[0].layer, group[0].schedule
        channel.record(Metric("VisualizeDuration", (time.perf_counter() - start) * 1000, "ms", "time"))
        channel.record(Metric("VisualizeOptimizationSteps", schedule.opt_steps * schedule.upscaling_steps * len(group)))
        if results[0].batched_sides:
            channel.record(Metric("VisualizeImagesBatched", len(group)))
            logger.info("optimized %d images of layer %d together at sides %s", len(group), layer,
                        results[0].batched_sides)
        if layer is not None:
            for result in results:
                channel.record(Metric("VisualizeFinalActivation", result.activation_final, "activation", "gauge",
                                      {"Layer": str(layer)}))
        encode = self.encoders.submit if self.encoders else lambda f, *args: f(*args)
        return [encode(to_png, result.image, self.png_text(single, result)) for single, result in zip(group, results)]

    def png_text(self, request: VisualizeRequest, result) -> dict:
        """A single image's PNG text: its request, what it reached, and what made it (the group
        shape where it is not 1). A single filter's image reports its channel's mean activation
        (or its neuron's) at the start and at the end; an objective list's, each term's value at
        the end and their weighted sum."""
        drawing = request.drawing
        if drawing.is_list():
            reached = {"terms": json.dumps([float(f"{value:.6g}") for value in result.final]),
                       "objective_value": f"{objective_value(request, result.final):.6g}"}
        else:
            reached = {"layer": request.layer, "filter": request.filter, "seed": request.seed,
                       "activation_start": f"{result.activation_start:.6g}",
                       "activation_final": f"{result.activation_final:.6g}"}
        drawn = {} if drawing.is_article() else {name: str(value) for name, value in vars(drawing).items()
                                                 if value is not None}
        seed = {"seed": request.seed} if drawing.is_list() else {}
        return {**reached, **seed, "precision": self.precision,
                **({"group": request.group} if request.group > 1 else {}), **drawn, **self.provenance.text()}

    def _result(self, request: VisualizeRequest, singles: list):
        refused = next((s for s in singles if isinstance(s, Refusal)), None)
        if refused:
            return refused
        cache = "hit" if all(hit for _, hit in singles) else "miss"
        if request.filters is None:
            png = singles[0][0]  # its text is png_text's
            numbers = {"layer": request.layer, "filter": request.filter, "seed": request.seed,
                       "precision": self.precision}
            return Result(numbers, lambda text: png, cache=cache)
        numbers = {"layer": request.layer, "filters": ",".join(map(str, request.filters)), "seed": request.seed,
                   "precision": self.precision}
        if request.output == "zip":
            files = [(png_name(request.layer, f), png) for f, (png, _) in zip(request.filters, singles)]
            return Result(numbers, lambda text: zip_of(files), output="zip", cache=cache)
        labels = [f"filter {f}" for f in request.filters]
        return Result(numbers, lambda text: grid_png(labels, [png for png, _ in singles], text), cache=cache)


def _encoded(png):
    """PNG bytes, or the refusal of an image whose encoding failed."""
    if not isinstance(png, Future):
        return png
    try:
        return png.result()
    except Exception as error:
        logger.exception("a PNG could not be encoded")
        return InternalError(f"the picture could not be encoded ({type(error).__name__})")


def optimization_groups(requests: list[VisualizeRequest], max_images: int) -> list[list[VisualizeRequest]]:
    """Single-image requests -> the groups render_images takes: same layer, schedule, group shape and
    drawing, in order of arrival, at most `max_images` each, or G for a group shape G > 1."""
    alike = {}
    for request in requests:
        alike.setdefault((request.layer, request.schedule, request.group, request.drawing), []).append(request)
    return [images[i:i + size] for (_, _, shape, _), images in alike.items()
            for size in [shape if shape > 1 else max_images] for i in range(0, len(images), size)]
