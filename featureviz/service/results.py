"""What a batch gives back: one result type for every operation, refusals, metrics, and the answer
each request gets (status, content type, headers, bytes), with what made it."""
import json
import logging
from dataclasses import dataclass, field
from typing import Callable

import torch

from .refusals import BadRequest, InternalError, Refusal

logger = logging.getLogger(__name__)
PICTURES = {"png": "image/png", "zip": "application/zip"}  # the outputs made by `picture`, by content type
UNTRAINED = "untrained: seeded random weights (WEIGHTS=random), no learned features"


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
class Metric:
    name: str
    value: float
    unit: str = "count"
    kind: str = "counter"  # counter, time (ms) or gauge
    dimensions: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict
    refusal: Refusal | None = None


@dataclass(frozen=True)
class Provenance:
    """What made an answer: the model version and the weights (weights.json of the archive)."""
    version: str
    weights: dict

    @property
    def has_classifier(self) -> bool:
        return self.weights.get("classifier", True)

    def note(self) -> dict:
        w = self.weights
        description = UNTRAINED if not w["trained"] else f"{w.get('description', w['source'])} (sha256 {w['sha256'][:12]})"
        return {"source": w["source"], "trained": w["trained"], "classifier": self.has_classifier,
                "sha256": w["sha256"], "description": description}

    def text(self) -> dict:
        """What every PNG says in its text."""
        return {"model_version": self.version, "weights": self.note()["description"]}

    def headers(self) -> dict:
        return {"X-Model-Version": self.version, "X-Weights": self.note()["description"]}


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


def each_alone_on_failure(run: Callable[[list], list], items: list, memory_hint: str) -> list:
    """run(items) -> one outcome per item. When it fails for several items, each is run alone, so
    that only an item that fails alone is refused: 507 (naming `size`) when it ran out of memory,
    500 otherwise."""
    try:
        return run(items)
    except Exception as error:
        if len(items) > 1:
            logger.warning("%d items failed together (%s); running them one by one", len(items),
                           type(error).__name__)
            return [outcome for item in items for outcome in each_alone_on_failure(run, [item], memory_hint)]
        if isinstance(error, torch.OutOfMemoryError):
            logger.exception("a request ran out of memory")
            return [BadRequest("size", f"the request does not fit in this worker's memory; {memory_hint}", 507)]
        logger.exception("a request failed")
        return [InternalError(f"the request failed in the worker ({type(error).__name__}); the others in "
                              "its batch are not affected: see the worker's log")]
