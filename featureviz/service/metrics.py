"""A metric a batch produced, for the model server to emit."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str = "count"
    kind: str = "counter"  # counter, time (ms) or gauge
    dimensions: dict = field(default_factory=dict)
