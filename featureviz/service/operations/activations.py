"""`activations`: the mean activation of each channel of a layer for an uploaded image, and the
top channels."""
import torch

from ...attribution.activations import channel_means, top_channels
from ...model.network import LAYER_COUNT
from ..answers import Result
from ..checks import check_side
from ..fields import Field
from .base import ImageOperation


class Activations(ImageOperation):
    name = "activations"
    fields = [Field("layer", int, 42, 0, LAYER_COUNT - 1), Field("size", int, 224, 1, 1024)]

    def check(self, values):
        check_side(self.model.features, values["layer"], values["size"])

    def run(self, requests, channel):
        """Requests of the same layer and size share one forward pass."""
        results = [None] * len(requests)
        groups = {}
        for i, request in enumerate(requests):
            groups.setdefault((request.values["layer"], request.values["size"]), []).append(i)
        for (layer, _), indices in groups.items():
            means = channel_means(self.model.features, layer, torch.stack([requests[i].image for i in indices]))
            for i, row in zip(indices, means):
                numbers = {"layer": layer, "channels": row.numel(), "means": row.tolist(), "top": top_channels(row)}
                results[i] = Result(numbers, output="json")
        return results
