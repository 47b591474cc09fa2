"""What an operation gives back for a request (a Result, or a Refusal) and the answer the request
gets: status, content type, headers and bytes, with what made it."""
import json
from dataclasses import dataclass, field
from typing import Callable

import torch

from .provenance import Provenance
from .refusals import Refusal

PICTURES = {"png": "image/png", "zip": "application/zip"}  # the outputs made by `picture`, by content type


@dataclass
class Result:
    """An operation's answer to one request: the numbers (its JSON answer) and its picture on
    demand (PNG text entries -> PNG bytes, or a zip of PNGs), sent as the request's `output` asks."""
    numbers: dict
    picture: Callable[[dict], bytes] | None = field(default=None, repr=False)
    output: str = "png"
    cache: str | None = None  # "hit" or "miss" where the result cache was asked

    def json(self) -> dict:
        return {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in self.numbers.items()}

    def png(self, text: dict) -> bytes:
        """The picture, with the scalar numbers and `text` as PNG text entries."""
        scalars = {k: v for k, v in self.numbers.items() if isinstance(v, (int, float, str))}
        return self.picture({**scalars, **text})


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict
    refusal: Refusal | None = None


def answer(outcome: Result | Refusal, provenance: Provenance) -> Answer:
    headers = provenance.headers()
    if isinstance(outcome, Refusal):
        body = json.dumps({**outcome.body(), "model_version": provenance.version}).encode()
        return Answer(outcome.status, "application/json", body, headers, outcome)
    if outcome.cache:
        headers["X-Cache"] = outcome.cache
    if outcome.output in PICTURES:
        return Answer(200, PICTURES[outcome.output], outcome.png(provenance.text()), headers)
    body = json.dumps({**outcome.json(), "model_version": provenance.version, "weights": provenance.note()})
    return Answer(200, "application/json", body.encode(), headers)
