"""The served operations, one record each: its fields, parse, run, and what the service must know
of it. The registered model name selects one.

parse(fields, model) returns the operation's request or raises a BadRequest naming the field;
run(worker, requests) returns one Result or Refusal per request, `worker` being the narrow
interface of operations.worker."""
from dataclasses import dataclass
from typing import Callable

from ..fields import Field
from . import activations, image_maps, network
from .request import one_by_one
from .visualize import request as visualize_request
from .visualize import run as visualize_run


@dataclass(frozen=True)
class Operation:
    name: str
    fields: list[Field]
    parse: Callable  # (fields, model) -> a request, or raises BadRequest
    run: Callable  # (Worker, requests) -> a Result or Refusal for each
    body_is_image: bool
    memory_hint: str = "lower size"  # what to lower when a request does not fit in memory
    needs_classifier: bool = False  # refused where the weights have none (reads class scores)
    optimizes: bool = False  # runs the activation maximization (model.lean's network, its CPU kernel)
    takes_filters_limit: bool = False  # parse takes the worker's compute limit on `filters` too


OPERATIONS = {op.name: op for op in [
    Operation("visualize", visualize_request.FIELDS, visualize_request.parse_visualize, visualize_run.run, body_is_image=False,
              memory_hint=visualize_run.MEMORY_HINT, optimizes=True, takes_filters_limit=True),
    Operation("activations", activations.FIELDS, activations.parse, activations.run, body_is_image=True),
    Operation("deconv", image_maps.DECONV_FIELDS, image_maps.parse_deconv, one_by_one(image_maps.deconv),
              body_is_image=True),
    Operation("saliency", image_maps.SALIENCY_FIELDS, image_maps.parse_saliency, one_by_one(image_maps.saliency_map),
              body_is_image=True, needs_classifier=True),
    Operation("gradcam", image_maps.GRADCAM_FIELDS, image_maps.parse_gradcam, one_by_one(image_maps.gradcam_map),
              body_is_image=True, needs_classifier=True),
    Operation("occlusion", image_maps.OCCLUSION_FIELDS, image_maps.parse_occlusion,
              one_by_one(image_maps.occlusion_map), body_is_image=True, needs_classifier=True),
    Operation("layers", network.LAYERS_FIELDS, network.parse_layers, one_by_one(network.layers), body_is_image=False),
    Operation("filters", network.FILTERS_FIELDS, network.parse_filters, one_by_one(network.filters),
              body_is_image=False),
]}
