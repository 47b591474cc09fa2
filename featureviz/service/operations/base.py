"""An operation: what one registered model name serves, as an object of its own. A template, as
TorchServe's BaseHandler is: the service calls `configure` once at the worker's start, `parse` for
each request and `run` for each batch; a subclass overrides only what differs (captum's shape: one
class per method, the same calls).

    Operation         fields in a JSON body or named parts; each request answered alone
    ImageOperation    ... with an uploaded image (decoded, resized, cropped) as the field `data`

`parse` returns the operation's request or raises a BadRequest naming the field; `run` returns
one Result or Refusal per request and reports metrics and progress to the channel it is given."""
from dataclasses import dataclass

import torch

from ...model.network import Model
from ..answers import Result
from ..cache import ResultCache
from ..channel import Channel
from ..fields import Field, parse_fields
from ..provenance import Provenance
from ..settings import Setting, Settings
from ..uploads import parse_upload


@dataclass(frozen=True)
class Request:
    """An operation's request: its validated fields, and the uploaded image where it takes one."""
    values: dict
    image: torch.Tensor | None = None  # (3, size, size) in [0, 1]


class Operation:
    name: str = ""
    fields: list[Field] = []
    settings: list[Setting] = []  # its own settings, read by configure
    body_is_image: bool = False  # a raw body is the image, the field `data`
    needs_classifier: bool = False  # reads class scores: refused where the weights have no classifier
    explains: bool = False  # an attribution of the image: TorchServe's /explanations and KServe's :explain
    memory_hint: str = "lower size"  # what to lower when a request does not fit in memory

    def __init__(self, model: Model, provenance: Provenance, cache: ResultCache | None = None):
        self.model, self.provenance, self.cache = model, provenance, cache

    def configure(self, settings: Settings, device: torch.device) -> None:
        """Its own settings, read once at the worker's start."""

    def describe(self) -> str:
        """What the worker's start says of how it computes (settings decided at the start)."""
        return "fp32"

    def parse(self, fields: dict) -> Request:
        values = parse_fields(fields, self.fields)
        self.check(values)
        return Request(values)

    def check(self, values: dict) -> None:
        """Refuses, with a BadRequest naming the field, what the network cannot take."""

    def run(self, requests: list, channel: Channel) -> list:
        return [self.result(request) for request in requests]

    def result(self, request: Request) -> Result:
        raise NotImplementedError


class ImageOperation(Operation):
    body_is_image = True

    def parse(self, fields: dict) -> Request:
        values, image = parse_upload(fields, self.fields)
        self.check(values)
        return Request(values, image)
