"""`activations`: the mean activation of each channel of a layer for an uploaded image, and the
top channels."""
import torch

from ...attribution.activations import channel_means, top_channels
from ...model.network import LAYER_COUNT
from ..answers import Result
from ..checks import check_side
from ..fields import Field
from ..uploads import parse_upload
from .request import ImageRequest
from .worker import Worker

FIELDS = [Field("layer", int, 42, 0, LAYER_COUNT - 1), Field("size", int, 224, 1, 1024)]


def parse(fields: dict, model) -> ImageRequest:
    values, image = parse_upload(fields, FIELDS)
    check_side(model.features, values["layer"], values["size"])
    return ImageRequest("activations", values, image)


def run(worker: Worker, requests: list[ImageRequest]) -> list[Result]:
    """Requests of the same layer and size share one forward pass."""
    results = [None] * len(requests)
    groups = {}
    for i, request in enumerate(requests):
        groups.setdefault((request.values["layer"], request.values["size"]), []).append(i)
    for (layer, _), indices in groups.items():
        means = channel_means(worker.model.features, layer, torch.stack([requests[i].image for i in indices]))
        for i, row in zip(indices, means):
            numbers = {"layer": layer, "channels": row.numel(), "means": row.tolist(), "top": top_channels(row)}
            results[i] = Result(numbers, output="json")
    return results
