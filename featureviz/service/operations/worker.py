"""What an operation may use of the service that runs it: a narrow, declared interface.

Image and network operations read only the model; visualize also the result cache, the
precision, its group limits, metrics, progress events and the provenance its PNGs carry."""
from typing import Protocol

from ...model.network import Model
from ..cache import ResultCache
from ..metrics import Metric
from ..provenance import Provenance


class Worker(Protocol):
    model: Model
    cache: ResultCache | None  # None where the result cache is off
    precision: str  # fp32, tf32 or bf16
    batch_images: int  # single-filter images optimized together at most
    group_size: int  # a `filters` request's images are optimized in groups of this shape
    provenance: Provenance

    def cache_context(self) -> dict:
        """What a cached result depends on besides the request."""

    def record(self, metric: Metric) -> None:
        """A metric of the running batch."""

    def event(self, request, event: dict) -> None:
        """A progress event of a streamed request of the running batch, sent at once."""
