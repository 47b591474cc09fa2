"""A batch of `visualize` requests, end to end: every single-filter image the batch needs (its
requests' and their `filters`') is looked up in the result cache; identical ones are computed
once; the rest are optimized together by layer and schedule, `batch_images` at a time (exact:
featureviz.optim.render), or where the worker's group shape G is more than 1 a `filters` request's
in groups of exactly G (featureviz.optim.groups), then cached one by one; a `filters` request
gets the labelled grid of its images, or with output: "zip" one PNG per filter."""
import logging
import time

import torch

from ..optim.groups import visualize_group
from ..optim.render import visualize_many
from . import drawn
from ..pictures import grid_png, to_png
from . import progress
from .refusals import Refusal
from .answers import Result
from .metrics import Metric
from .retry import each_alone_on_failure
from .visualize import VisualizeRequest
from .zipped import png_name, zip_of

logger = logging.getLogger(__name__)
MEMORY_HINT = "lower size, upscaling_steps or upscaling_factor"


def run_visualize(features, requests: list[VisualizeRequest], precision: str = "fp32", on_scale=None) -> list:
    """Single-filter requests of one layer, schedule, group shape and drawing -> their
    Visualizations: the article's at shape 1 optimized together where that changes no image
    (optim.render.visualize_many), at shape G as one group of G (optim.groups); other drawings by
    service.drawn; `on_scale` as there."""
    layer, schedule, group, drawing = requests[0].layer, requests[0].schedule, requests[0].group, requests[0].drawing
    if any(r.filters is not None or (r.layer, r.schedule, r.group, r.drawing) != (layer, schedule, group, drawing)
           for r in requests):
        raise ValueError("run_visualize takes single-filter requests of one layer, schedule, group shape and drawing")
    if not drawing.is_article():
        return drawn.run(features, requests, precision, on_scale)
    filters, seeds = [r.filter for r in requests], [r.seed for r in requests]
    # Gradients even when a caller runs us under no_grad or inference_mode (as model servers do).
    with torch.inference_mode(False), torch.enable_grad():
        if group > 1:
            return visualize_group(features, layer, filters, seeds, group, schedule, precision, on_scale=on_scale)
        return visualize_many(features, layer, filters, seeds, schedule, precision, on_scale=on_scale)


def visualize_batches(requests: list[VisualizeRequest], max_images: int) -> list[list[VisualizeRequest]]:
    """Single-filter requests -> the batches run_visualize takes: same layer, schedule and group
    shape, in order of arrival, at most `max_images` each, or G for a group shape G > 1."""
    groups = {}
    for request in requests:
        groups.setdefault((request.layer, request.schedule, request.group, request.drawing), []).append(request)
    return [images[i:i + size] for (_, _, group, _), images in groups.items()
            for size in [group if group > 1 else max_images] for i in range(0, len(images), size)]


def run(worker, requests: list[VisualizeRequest]) -> list:
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
    batches = visualize_batches([single for single in keys if single not in images], worker.batch_images)
    groups_of = {}  # id of a streamed request -> the batches, by index, that hold its images
    for k, batch in enumerate(batches):
        for request_id in {id(r) for single in batch for r in listeners.get(single, [])}:
            groups_of.setdefault(request_id, []).append(k)
    for k, batch in enumerate(batches):
        optimized = each_alone_on_failure(
            lambda group: _optimize(worker, group, _progress(worker, group, listeners, k, groups_of)), batch,
            MEMORY_HINT)
        for single, png in zip(batch, optimized):
            if isinstance(png, Refusal):
                images[single] = png
                continue
            images[single] = (png, False)
            if worker.cache:
                worker.cache.put(keys[single], png)
    return [_result(worker, request, [images[single] for single in request.singles(worker.group_size)])
            for request in requests]


def _result(worker, request, singles):
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


def _progress(worker, group: list[VisualizeRequest], listeners: dict, batch_index: int, groups_of: dict):
    """visualize_many's on_scale for the images of `group`, batch `batch_index` of the run: each
    streamed request that waits for some of them gets a `scale` event a scale (with `filters`:
    those images' filters and activations, and which of the request's groups this is, of how
    many). None when nobody waits."""
    waiting = {}  # id of a streamed request -> (request, positions in group of its images)
    for position, single in enumerate(group):
        for request in listeners.get(single, []):
            waiting.setdefault(id(request), (request, []))[1].append(position)
    if not waiting:
        return None

    def on_scale(scale, side, activations, images):
        for request, positions in waiting.values():
            event = {"event": "scale", "scale": scale + 1, "scales": request.schedule.upscaling_steps, "side": side}
            if request.filters is None:
                event["activation"] = activations[positions[0]]
            else:
                event["filters"] = [group[p].filter for p in positions]
                event["activations"] = [activations[p] for p in positions]
                mine = groups_of[id(request)]
                event["group"], event["groups"] = mine.index(batch_index) + 1, len(mine)
            if request.preview and request.filters is None:
                event["preview"] = progress.preview(images[positions[0]])
            elif request.preview:
                event["previews"] = [progress.preview(images[p]) for p in positions]
            worker.event(request, event)
    return on_scale


def _optimize(worker, batch: list[VisualizeRequest], on_scale=None) -> list[bytes]:
    """Single-filter requests of one layer and schedule -> a PNG each."""
    start = time.perf_counter()
    results = run_visualize(worker.model.features, batch, worker.precision, on_scale)
    layer, schedule = batch[0].layer, batch[0].schedule
    worker.record(Metric("VisualizeDuration", (time.perf_counter() - start) * 1000, "ms", "time"))
    worker.record(Metric("VisualizeOptimizationSteps", schedule.opt_steps * schedule.upscaling_steps * len(batch)))
    if results[0].batched_sides:
        worker.record(Metric("VisualizeImagesBatched", len(batch)))
        logger.info("optimized %d images of layer %d together at sides %s", len(batch), layer,
                    results[0].batched_sides)
    for result in results:
        worker.record(Metric("VisualizeFinalActivation", result.activation_final, "activation", "gauge",
                             {"Layer": str(layer)}))
    note = worker.provenance.text()
    return [to_png(result.image, png_text(single, result, worker.precision, note))
            for single, result in zip(batch, results)]
