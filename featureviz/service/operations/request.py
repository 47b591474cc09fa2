"""The request of an image or network operation, and the parse and run every such operation
shares: the upload (decode, resize, crop) or the fields alone, then the operation's check against
the network; each request run by itself."""
from dataclasses import dataclass
from typing import Callable

import torch

from ..fields import Field, parse_fields
from ..uploads import parse_upload
from .worker import Worker


@dataclass(frozen=True)
class ImageRequest:
    """An image operation's request, or one about the network (`image` None)."""
    operation: str
    values: dict  # validated fields
    image: torch.Tensor | None = None  # (3, size, size) in [0, 1]


def parser(operation: str, fields: list[Field], check: Callable = lambda values, model: None,
           takes_image: bool = True) -> Callable:
    """(fields, model) -> an ImageRequest: the upload and `fields` parsed, then check(values, model),
    which raises a BadRequest naming the field."""
    def parse(raw: dict, model) -> ImageRequest:
        if takes_image:
            values, image = parse_upload(raw, fields)
        else:
            values, image = parse_fields(raw, fields), None
        check(values, model)
        return ImageRequest(operation, values, image)
    return parse


def one_by_one(run: Callable) -> Callable:
    """run(model, ImageRequest) -> Result, as an operation's run over a list of requests."""
    def run_each(worker: Worker, requests: list[ImageRequest]) -> list:
        return [run(worker.model, request) for request in requests]
    return run_each
