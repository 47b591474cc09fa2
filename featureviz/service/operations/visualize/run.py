"""A TorchServe batch's `visualize` requests, end to end: every single-filter image they need (their
own and their `filters`') is looked up in the result cache; identical ones are computed once; the
rest are optimized in groups: by layer and schedule, `batch_images` at a time (exact:
featureviz.optim.render), or where the worker's group shape G is more than 1 a `filters`
request's in groups of exactly G (featureviz.optim.groups), then cached one by one; a `filters`
request gets the labelled grid of its images, or with output: "zip" one PNG per filter."""
import logging
import time

from ....gradients import gradients
from ....optim.groups import visualize_group
from ....optim.render import visualize_many
from ....pictures import grid_png, to_png
from ...answers import Result
from ...metrics import Metric
from ...refusals import Refusal
from ...retry import each_alone_on_failure
from ..worker import Worker
from . import drawn, stream
from .request import VisualizeRequest
from .zipped import png_name, zip_of

logger = logging.getLogger(__name__)
MEMORY_HINT = "lower size, upscaling_steps or upscaling_factor"


def run_visualize(features, requests: list[VisualizeRequest], precision: str = "fp32", on_scale=None) -> list:
    """Single-filter requests of one layer, schedule, group shape and drawing -> their
    Visualizations: the article's at shape 1 optimized together where that changes no image
    (optim.render.visualize_many), at shape G as one group of G (optim.groups); other drawings by
    operations.visualize.drawn; `on_scale` as there."""
    layer, schedule, group, drawing = requests[0].layer, requests[0].schedule, requests[0].group, requests[0].drawing
    if any(r.filters is not None or (r.layer, r.schedule, r.group, r.drawing) != (layer, schedule, group, drawing)
           for r in requests):
        raise ValueError("run_visualize takes single-filter requests of one layer, schedule, group shape and drawing")
    if not drawing.is_article():
        return drawn.run(features, requests, precision, on_scale)
    filters, seeds = [r.filter for r in requests], [r.seed for r in requests]
    with gradients():
        if group > 1:
            return visualize_group(features, layer, filters, seeds, group, schedule, precision, on_scale=on_scale)
        return visualize_many(features, layer, filters, seeds, schedule, precision, on_scale=on_scale)


def optimization_groups(requests: list[VisualizeRequest], max_images: int) -> list[list[VisualizeRequest]]:
    """Single-filter requests -> the groups run_visualize takes: same layer, schedule and group
    shape, in order of arrival, at most `max_images` each, or G for a group shape G > 1."""
    alike = {}
    for request in requests:
        alike.setdefault((request.layer, request.schedule, request.group, request.drawing), []).append(request)
    return [images[i:i + size] for (_, _, shape, _), images in alike.items()
            for size in [shape if shape > 1 else max_images] for i in range(0, len(images), size)]


def run(worker: Worker, requests: list[VisualizeRequest]) -> list:
    """Each request's Result (a PNG, cache hit or miss) or refusal."""
    keys = {single: single.cache_key(**worker.cache_context())
            for r in requests for single in r.singles(worker.group_size)}
    images = {}  # single-filter request (identical ones are equal) -> (PNG, cache hit) or Refusal
    for single, key in keys.items():
        cached = worker.cache.get(key) if worker.cache else None
        if cached is not None:
            images[single] = (cached, True)
    listeners = {}  # single-filter image -> the streamed requests that wait for it
    for request in requests:
        if request.stream:
            for single in request.singles(worker.group_size):
                listeners.setdefault(single, []).append(request)
    groups = optimization_groups([single for single in keys if single not in images], worker.batch_images)
    groups_of = {}  # id of a streamed request -> the groups, by index, that hold its images
    for k, group in enumerate(groups):
        for request_id in {id(r) for single in group for r in listeners.get(single, [])}:
            groups_of.setdefault(request_id, []).append(k)
    for k, group in enumerate(groups):
        optimized = each_alone_on_failure(
            lambda images: _optimize(worker, images, stream.on_scale_events(worker, images, listeners, k, groups_of)),
            group, MEMORY_HINT)
        for single, png in zip(group, optimized):
            if isinstance(png, Refusal):
                images[single] = png
                continue
            images[single] = (png, False)
            if worker.cache:
                worker.cache.put(keys[single], png)
    return [_result(worker, request, [images[single] for single in request.singles(worker.group_size)])
            for request in requests]


def _result(worker: Worker, request: VisualizeRequest, singles: list):
    refused = next((s for s in singles if isinstance(s, Refusal)), None)
    if refused:
        return refused
    cache = "hit" if all(hit for _, hit in singles) else "miss"
    if request.filters is None:
        png = singles[0][0]  # its text is png_text's
        numbers = {"layer": request.layer, "filter": request.filter, "seed": request.seed, "precision": worker.precision}
        return Result(numbers, lambda text: png, cache=cache)
    numbers = {"layer": request.layer, "filters": ",".join(map(str, request.filters)), "seed": request.seed,
               "precision": worker.precision}
    if request.output == "zip":
        files = [(png_name(request.layer, f), png) for f, (png, _) in zip(request.filters, singles)]
        return Result(numbers, lambda text: zip_of(files), output="zip", cache=cache)
    labels = [f"filter {f}" for f in request.filters]
    return Result(numbers, lambda text: grid_png(labels, [png for png, _ in singles], text), cache=cache)


def png_text(request: VisualizeRequest, result, precision: str, note: dict) -> dict:
    """A single image's PNG text: its request, the activations reached, and what made it (the
    group shape where it is not 1)."""
    return {"layer": request.layer, "filter": request.filter, "seed": request.seed,
            "activation_start": f"{result.activation_start:.6g}", "activation_final": f"{result.activation_final:.6g}",
            "precision": precision, **({"group": request.group} if request.group > 1 else {}), **drawn.text(request),
            **note}


def _optimize(worker: Worker, group: list[VisualizeRequest], on_scale=None) -> list[bytes]:
    """A group of single-filter requests (one layer and schedule) -> a PNG each."""
    start = time.perf_counter()
    results = run_visualize(worker.model.features, group, worker.precision, on_scale)
    layer, schedule = group[0].layer, group[0].schedule
    worker.record(Metric("VisualizeDuration", (time.perf_counter() - start) * 1000, "ms", "time"))
    worker.record(Metric("VisualizeOptimizationSteps", schedule.opt_steps * schedule.upscaling_steps * len(group)))
    if results[0].batched_sides:
        worker.record(Metric("VisualizeImagesBatched", len(group)))
        logger.info("optimized %d images of layer %d together at sides %s", len(group), layer,
                    results[0].batched_sides)
    for result in results:
        worker.record(Metric("VisualizeFinalActivation", result.activation_final, "activation", "gauge",
                             {"Layer": str(layer)}))
    note = worker.provenance.text()
    return [to_png(result.image, png_text(single, result, worker.precision, note))
            for single, result in zip(group, results)]
