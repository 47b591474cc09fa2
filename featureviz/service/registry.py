"""The served operations, one entry each: fields, parse, run, whether a raw body is an image.

Every run takes the worker and a list of parsed requests and returns one Result (or refusal) per
request; the worker needs nothing else to know about an operation."""
from dataclasses import dataclass
from typing import Callable

from . import visualize_batch
from .explain import ACTIVATIONS_FIELDS, EXPLANATIONS, parse_activations, run_activations
from .fields import Field
from .visualize import FIELDS as VISUALIZE_FIELDS
from .visualize import parse_visualize


@dataclass(frozen=True)
class Operation:
    name: str
    fields: list[Field]
    parse: Callable  # (fields, model) -> a request, or raises BadRequest
    run: Callable  # (worker, requests) -> a Result or Refusal for each
    body_is_image: bool
    memory_hint: str = "lower size"  # what to lower when a request does not fit in memory
    needs_classifier: bool = False  # refused where the weights have none
    optimizes: bool = False  # runs the activation maximization (model.lean's network, its CPU kernel)
    takes_filters_limit: bool = False  # parse takes the worker's compute limit on `filters` too


OPERATIONS = {op.name: op for op in [
    Operation("visualize", VISUALIZE_FIELDS, parse_visualize, visualize_batch.run, body_is_image=False,
              memory_hint=visualize_batch.MEMORY_HINT, optimizes=True, takes_filters_limit=True),
    Operation("activations", ACTIVATIONS_FIELDS, parse_activations, run_activations, body_is_image=True),
    *[Operation(name, e.fields, e.parser(name), e.runner(), body_is_image=e.takes_image,
                needs_classifier=e.needs_classifier)
      for name, e in EXPLANATIONS.items()],
]}
