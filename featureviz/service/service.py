"""A worker's service: one operation over one model, a batch of requests at a time, end to end.

A model server hands each request over as a body and named parts; `parse` turns it into the
operation's request or a refusal, `run` turns a batch of those into answers (status, content type,
headers, bytes) and the metrics the batch produced. One request's failure never fails another's.
"""
import gc
import logging
from dataclasses import dataclass

import torch

from ..model.network import Model, read_in
from .allocator import keep_freed_memory, release_freed_memory
from .answers import Answer, answer
from .cache import ResultCache
from .channel import Channel
from .fields import json_by_default, request_fields
from .instances import Instances, instance_fields, is_instances, of_instance, predictions
from .memory import MEMORY_CEILING_MB, memory_bytes, memory_metrics, past_ceiling
from .metrics import Metric
from .operations import OPERATIONS
from .provenance import Provenance
from .refusals import BadRequest, InternalError, Refusal
from .retry import each_alone_on_failure
from .settings import CACHE_DIR, CACHE_MAX_MB, Settings
from .streams import Streams

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    answers: list[Answer]
    metrics: list[Metric]
    restart: str | None = None  # why the worker should restart once these answers are sent


class Service:
    def __init__(self, operation: str, state_dict: dict, weights: dict, version: str, device: torch.device,
                 settings: Settings | None = None):
        """`weights`: what the archive says of them (source, trained, sha256). `settings`: the
        worker's (by default the environment's FEATUREVIZ_* variables alone)."""
        if operation not in OPERATIONS:
            raise ValueError(f"register this archive as one of {tuple(OPERATIONS)}, not {operation!r}")
        settings = settings or Settings()
        self.made_with = (operation, state_dict, weights, version, device, settings)
        self.device = torch.device(device)
        self.provenance = Provenance(version, weights)
        self.model = Model(state_dict, self.device, self.provenance.has_classifier)
        max_bytes = int(settings[CACHE_MAX_MB] * 2**20)
        cache = ResultCache(settings[CACHE_DIR], max_bytes) if max_bytes > 0 else None
        self.operation = OPERATIONS[operation](self.model, self.provenance, cache)
        self.operation.configure(settings, self.device)
        if self.operation.needs_classifier:
            read_in(self.model.net)  # its memory from the start, not at its first request
        # On the CPU, large activations from reused heap memory rather than fresh pages every step.
        self.keeps_freed_memory = self.device.type == "cpu" and keep_freed_memory()
        self.memory_ceiling_mb = settings[MEMORY_CEILING_MB]

    def rebuilt(self, why: str) -> "Service":
        """This service built again from its weights and settings, after this one is dropped and
        its memory given back: a worker past its memory ceiling restarts its service in place, with
        no request lost (TorchServe 0.12 fails the requests it was gathering for a worker whose
        process ends; docs/reliability.md, "A worker's memory")."""
        logger.warning("%s: %s restarts its service", why, self.operation.name)
        made_with, self.model, self.operation = self.made_with, None, None
        gc.collect()
        release_freed_memory()
        service = Service(*made_with)
        still = past_ceiling(memory_bytes(), service.memory_ceiling_mb)
        if still:
            logger.error("%s after its service restarted: the memory is not the service's to give back; "
                         "restart the worker", still)
        return service

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
            return self.operation.parse(request_fields(body, parts, self.operation.body_is_image))
        except BadRequest as refusal:
            return refusal
        except Exception as error:
            logger.exception("%s: a request could not be parsed", self.operation.name)
            return InternalError(f"the request could not be read ({type(error).__name__}); see the worker's log")

    def parse_explanation(self, body, parts: dict):
        """An explanation request (TorchServe's /explanations, KServe's :explain): the attribution
        operations' request, answered as JSON (the attributions) unless it names an output; any
        other operation refuses it."""
        if not self.operation.explains:
            explained = ", ".join(name for name, operation in OPERATIONS.items() if operation.explains)
            return BadRequest("model", f"{self.operation.name} has no explanations; use /predictions, or one of "
                                       f"{explained}")
        return self.parse(*json_by_default(body, parts))

    def _parse_instances(self, body: dict) -> Instances:
        parsed = []
        for i, fields in enumerate(instance_fields(body)):
            try:
                parsed.append(self.operation.parse(fields))
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
        streams = Streams(requests, emit, self.provenance.headers())
        channel = Channel(streams)
        if streams.count:
            logger.info("%s: a batch of %d requests, %d streamed", self.operation.name, len(requests), streams.count)
        try:
            owners, flat = [], []
            for i, request in enumerate(requests):
                for one in request.requests if isinstance(request, Instances) else [request]:
                    owners.append(i)
                    flat.append(one)
            outcomes = list(flat)
            valid = [i for i, r in enumerate(flat) if not isinstance(r, Refusal)]
            if valid:
                done = each_alone_on_failure(lambda some: self.operation.run(some, channel),
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
                answers.append(streams.last_line(i, mine[0]))
            else:
                answers.append(mine[0])
        memory = memory_bytes()
        metrics = channel.metrics + [metric for a in each for metric in self._answer_metrics(a)]
        return Batch(answers, metrics + memory_metrics(memory), past_ceiling(memory, self.memory_ceiling_mb))

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
