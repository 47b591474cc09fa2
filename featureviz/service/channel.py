"""What an operation reports while it runs a batch, to the channel it is given: the metrics the
batch produced, and the progress events of its streamed requests (sent at once). Reports flow one
way, from the operation to the model server."""
from .metrics import Metric
from .streams import Streams


class Channel:
    def __init__(self, streams: Streams | None = None):
        self.streams = streams or Streams()
        self.metrics: list[Metric] = []

    def record(self, metric: Metric) -> None:
        self.metrics.append(metric)

    def progress(self, request, event: dict) -> None:
        """A progress event of `request`, sent at once where it is streamed."""
        self.streams.event(request, event)
