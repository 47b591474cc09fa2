"""A worker's service: one operation over one model, a batch of requests at a time, end to end.

A model server hands each request over as a body and named parts; `parse` turns it into the
operation's request or a refusal, `run` turns a batch of those into answers (status, content type,
headers, bytes) and the metrics the batch produced. One request's failure never fails another's.
"""
import logging
from dataclasses import dataclass

import torch

from ..model import pool_relu
from ..model.network import Model
from ..optim.precision import default_precision
from .allocator import keep_freed_memory, release_freed_memory
from .answers import Answer, answer
from .cache import ResultCache
from .fields import request_fields
from .instances import Instances, instance_fields, is_instances, of_instance, predictions
from .metrics import Metric
from .operations import OPERATIONS
from .operations.visualize import stream
from .operations.visualize.filter_sets import FiltersLimit
from .provenance import Provenance
from .refusals import BadRequest, InternalError, Refusal
from .retry import each_alone_on_failure
from .settings import Settings

logger = logging.getLogger(__name__)
# group_size: auto on a GPU; not measured yet (docs/performance.md, "Groups of a fixed shape")
GPU_GROUP_SIZE = 16


@dataclass(frozen=True)
class Batch:
    answers: list[Answer]
    metrics: list[Metric]


class Service:
    def __init__(self, operation: str, state_dict: dict, weights: dict, version: str, device: torch.device,
                 settings: Settings = Settings()):
        """`weights`: what the archive says of them (source, trained, sha256)."""
        if operation not in OPERATIONS:
            raise ValueError(f"register this archive as one of {tuple(OPERATIONS)}, not {operation!r}")
        self.operation = OPERATIONS[operation]
        self.device = torch.device(device)
        self.provenance = Provenance(version, weights)
        self.model = Model(state_dict, self.device, self.provenance.has_classifier)
        self.precision = (default_precision(self.device, self.operation.optimizes) if settings.precision == "auto"
                          else settings.precision)
        self.batch_images = settings.batch_images
        # A GPU optimizes a `filters` request's images in groups of one fixed shape (optim.groups);
        # the CPU alone and in exact groups, as a larger group is no faster there
        # (docs/performance.md, "Batching: exact batches").
        self.group_size = (GPU_GROUP_SIZE if self.device.type == "cuda" else 1) if settings.group_size == "auto" \
            else int(settings.group_size)
        self.filters_limit = FiltersLimit.for_device(self.device.type, settings.max_filters, settings.max_filters_work)
        max_bytes = int(settings.cache_max_mb * 2**20)
        self.cache = ResultCache(settings.cache_dir, max_bytes) if max_bytes > 0 else None
        # On the CPU, large activations from reused heap memory rather than fresh pages every step.
        self.keeps_freed_memory = self.device.type == "cpu" and keep_freed_memory()
        # Built now (a second, once per machine) rather than in the first request.
        self.cpu_kernels = (["pool_relu"] if self.device.type == "cpu" and self.operation.optimizes
                            and pool_relu.kernel_available() else [])
        self._metrics = []
        self._streams = stream.Streams()

    def cache_context(self) -> dict:
        """What a cached result depends on besides the request."""
        return {"weights": self.provenance.weights["sha256"], "device": self.device.type,
                "precision": self.precision, "model_version": self.provenance.version}

    def record(self, metric: Metric):
        self._metrics.append(metric)

    def event(self, request, event: dict):
        """A progress event of a streamed request of the running batch, sent at once."""
        self._streams.event(request, event, self.provenance.headers())

    def parse(self, body, parts: dict):
        """A request's body (a decoded JSON object, raw bytes or None) and named parts -> the
        operation's request (or Instances of them, for KServe's v1 protocol), or the refusal
        that answers it."""
        try:
            if self.operation.needs_classifier and not self.provenance.has_classifier:
                raise BadRequest("weights", f"these weights have no classifier ({self.provenance.note()['description']}), "
                                            f"and {self.operation.name} needs class scores; serve weights with one "
                                            "(imagenet, or a Keras VGG-16 file saved with its top)")
            if is_instances(body):
                return self._parse_instances(body)
            return self._parse(request_fields(body, parts, self.operation.body_is_image))
        except BadRequest as refusal:
            return refusal
        except Exception as error:
            logger.exception("%s: a request could not be parsed", self.operation.name)
            return InternalError(f"the request could not be read ({type(error).__name__}); see the worker's log")

    def _parse(self, fields: dict):
        if self.operation.takes_filters_limit:
            return self.operation.parse(fields, self.model, self.filters_limit)
        return self.operation.parse(fields, self.model)

    def _parse_instances(self, body: dict) -> Instances:
        parsed = []
        for i, fields in enumerate(instance_fields(body)):
            try:
                parsed.append(self._parse(fields))
            except BadRequest as refusal:
                raise of_instance(i, refusal) from None
            if getattr(parsed[-1], "stream", False):
                raise BadRequest(f"instances[{i}].stream", "KServe's v1 protocol answers once; send stream: false")
        return Instances(parsed)

    def run(self, requests: list, emit=None) -> Batch:
        """Parsed requests (refusals and Instances among them) -> an answer each, in order.
        The instances of a body run in the batch as requests of their own.

        `emit(index, content_type, headers, data)` sends a streamed request's progress while the
        batch runs (False: it could not, and the request gets only the last line); its answer is
        then the stream's last line."""
        self._metrics = []
        self._streams = stream.Streams(requests, emit)
        if self._streams.count:
            logger.info("%s: a batch of %d requests, %d streamed", self.operation.name, len(requests),
                        self._streams.count)
        try:
            owners, flat = [], []
            for i, request in enumerate(requests):
                for one in request.requests if isinstance(request, Instances) else [request]:
                    owners.append(i)
                    flat.append(one)
            outcomes = list(flat)
            valid = [i for i, r in enumerate(flat) if not isinstance(r, Refusal)]
            if valid:
                done = each_alone_on_failure(lambda some: self.operation.run(self, some),
                                             [flat[i] for i in valid], self.operation.memory_hint)
                for i, outcome in zip(valid, done):
                    outcomes[i] = outcome
            each = [self._answer(outcome) for outcome in outcomes]
        finally:
            if self.keeps_freed_memory:
                release_freed_memory()  # what a batch freed goes back to the system between batches
        answers = []
        for i, request in enumerate(requests):
            mine = [a for a, owner in zip(each, owners) if owner == i]
            if isinstance(request, Instances):
                refused = next((k for k, a in enumerate(mine) if a.status != 200), None)
                answers.append(self._answer(of_instance(refused, mine[refused].refusal)) if refused is not None
                               else predictions(mine, self.provenance.headers()))
            elif getattr(request, "stream", False):
                answers.append(self._streams.last_line(i, mine[0]))
            else:
                answers.append(mine[0])
        return Batch(answers, self._metrics + [metric for a in each for metric in self._answer_metrics(a)])

    def _answer(self, outcome) -> Answer:
        try:
            return answer(outcome, self.provenance)
        except Exception as error:
            logger.exception("%s: an answer could not be encoded", self.operation.name)
            return answer(InternalError(f"the answer could not be encoded ({type(error).__name__})"), self.provenance)

    def _answer_metrics(self, a: Answer) -> list[Metric]:
        if a.refusal is not None:
            return [Metric("RequestErrors", 1, dimensions={"Field": a.refusal.field, "Status": str(a.status)})]
        if "X-Cache" in a.headers:
            hit = a.headers["X-Cache"] == "hit"
            return [Metric(f"{self.operation.name.title()}Cache{'Hits' if hit else 'Misses'}", 1)]
        return []
