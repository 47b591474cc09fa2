"""A worker's service: one operation over one model, a batch of requests at a time, end to end.

A model server hands each request over as a body and named parts; `parse` turns it into the
operation's request or a refusal, `run` turns a batch of those into answers (status, content type,
headers, bytes) and the metrics the batch produced. One request's failure never fails another's.
"""
import logging
import os
import time
from dataclasses import dataclass

import torch

from ..model import pool_relu
from ..model.network import Model
from ..optim.precision import check as check_precision
from ..optim.precision import default_precision
from .allocator import keep_freed_memory, release_freed_memory
from .cache import ResultCache
from .filter_sets import FiltersLimit
from .fields import request_fields
from .refusals import BadRequest, InternalError, Refusal
from . import progress
from .instances import Instances, instance_fields, is_instances, of_instance, predictions
from .operations import OPERATIONS
from .answers import Answer, answer
from .metrics import Metric
from .provenance import Provenance
from .retry import each_alone_on_failure

logger = logging.getLogger(__name__)
GPU_GROUP_SIZE = 16  # group_size: auto on a GPU; not measured yet (docs/layers.md, the GPU check)


@dataclass(frozen=True)
class Settings:
    precision: str = "auto"  # fp32, tf32, bf16, or auto (optim.precision.default_precision)
    batch_images: int = 4  # visualize: single-filter images optimized together at most
    cache_dir: str = ""
    cache_max_mb: float = 1024  # 0 turns the result cache off
    group_size: str = "auto"  # visualize `filters`: images optimized in groups of this fixed shape
    max_filters: str = "auto"  # visualize `filters`: the compute limit (filter_sets.FiltersLimit)
    max_filters_work: str = "auto"

    @classmethod
    def read(cls, config: dict, environ=os.environ) -> "Settings":
        """From a model configuration's settings, FEATUREVIZ_* environment variables first."""
        precision = str(environ.get("FEATUREVIZ_PRECISION") or config.get("precision") or "auto")
        if precision != "auto":
            check_precision(precision)
        batch_images = environ.get("FEATUREVIZ_BATCH_IMAGES") or config.get("batch_images", 4)
        if not str(batch_images).isdigit() or int(batch_images) < 1:
            raise ValueError(f"batch_images must be a positive integer, not {batch_images!r}")
        cache_dir = (environ.get("FEATUREVIZ_CACHE_DIR") or config.get("cache_dir")
                     or os.path.join(os.path.expanduser("~"), ".cache", "featureviz"))
        group_size = str(environ.get("FEATUREVIZ_GROUP_SIZE") or config.get("group_size", "auto"))
        if group_size != "auto" and not (group_size.isdigit() and int(group_size) >= 1):
            raise ValueError(f"group_size must be a positive integer or auto, not {group_size!r}")
        limits = [str(environ.get(f"FEATUREVIZ_{name.upper()}") or config.get(name, "auto"))
                  for name in ("max_filters", "max_filters_work")]
        FiltersLimit.for_device("cpu", *limits)  # refuses a bad value at the worker's start
        return cls(precision, int(batch_images), cache_dir, float(config.get("cache_max_mb", 1024)), group_size,
                   *limits)


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
        # the CPU alone and in exact batches, as a batch is no faster there (docs/layers.md).
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
        self._streams, self._began, self._emit, self._started = {}, set(), None, 0.0

    def cache_context(self) -> dict:
        """What a cached result depends on besides the request."""
        return {"weights": self.provenance.weights["sha256"], "device": self.device.type,
                "precision": self.precision, "model_version": self.provenance.version}

    def record(self, metric: Metric):
        self._metrics.append(metric)

    def event(self, request, event: dict):
        """A progress event of a streamed request of the running batch, sent at once."""
        index = self._streams.get(id(request))
        if index is None or self._emit is None:
            return
        event["elapsed_s"] = round(time.monotonic() - self._started, 3)
        if self._emit(index, progress.CONTENT_TYPE, self.provenance.headers(), progress.line(event)) is not False:
            self._began.add(index)

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
        self._emit, self._started, self._began = emit, time.monotonic(), set()
        self._streams = {id(r): i for i, r in enumerate(requests) if getattr(r, "stream", False)}
        if self._streams:
            logger.info("%s: a batch of %d requests, %d streamed", self.operation.name, len(requests), len(self._streams))
        try:
            owners, flat = [], []
            for i, request in enumerate(requests):
                for one in request.requests if isinstance(request, Instances) else [request]:
                    owners.append(i)
                    flat.append(one)
            outcomes = list(flat)
            valid = [i for i, r in enumerate(flat) if not isinstance(r, Refusal)]
            if valid:
                done = each_alone_on_failure(lambda group: self.operation.run(self, group),
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
                answers.append(progress.last_line(mine[0], began=i in self._began))
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
