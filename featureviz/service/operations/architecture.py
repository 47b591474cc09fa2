"""The operations about the network itself, no image: `layers` (each layer's type, channels,
spatial size and parameters at an input size: the model summary) and `filters` (a convolution's
learned kernels)."""
from ...model.geometry import conv_layers
from ...model.network import LAYER_COUNT
from ...model.summary import kernels, layer_table
from ...pictures import kernel_grid, table_png
from ..answers import Result
from ..checks import check_channels
from ..fields import Field
from ..refusals import BadRequest
from .base import Operation
from .image_maps import FILTER, OUTPUT

MAX_JSON_WEIGHTS = 300_000  # `filters` JSON without `filter`: layers up to this many weights


class Layers(Operation):
    name = "layers"
    fields = [Field("size", int, 224, 32, 1024), OUTPUT]

    def result(self, request):
        size = request.values["size"]
        rows = layer_table(self.model.net, size, self.model.has_classifier)
        columns = ["index", "name", "type", "channels", "spatial", "params"]
        lines = [[r["index"], r["name"], r["type"], r["channels"],
                  "x".join(map(str, r["spatial"])) if r["spatial"] else None, f"{r['params']:,}"] for r in rows]
        numbers = {"operation": self.name, "input_size": size, "layers": rows}
        return Result(numbers, lambda text: table_png(columns, lines, text), request.values["output"])


class Filters(Operation):
    name = "filters"
    fields = [Field("layer", int, 0, 0, LAYER_COUNT - 1), FILTER, OUTPUT]

    def check(self, values):
        layer, features = values["layer"], self.model.features
        convs = conv_layers(features)
        if layer not in convs:
            raise BadRequest("layer", f"layer {layer} is {type(features[layer]).__name__}, not a convolution; "
                                      f"expected one of {', '.join(map(str, convs))}")
        check_channels(features, layer, [values["filter"]], nullable=True)
        weight = features[layer].weight
        if values["filter"] is None and values["output"] == "json" and weight.numel() > MAX_JSON_WEIGHTS:
            raise BadRequest("filter", f"layer {layer} has {weight.numel()} weights, too many for one JSON answer "
                                       f"(at most {MAX_JSON_WEIGHTS}); send filter to get one filter's kernels")

    def result(self, request):
        v = request.values
        weights = kernels(self.model.features, v["layer"], v["filter"])
        numbers = {"operation": self.name, "layer": v["layer"], "filter": v["filter"], "shape": list(weights.shape),
                   "kernels": weights}
        if v["filter"] is None:
            tiles, labels = weights, list(range(len(weights)))
        elif weights.shape[1] == 3:
            tiles, labels = weights, [v["filter"]]
        else:  # one filter of a deep layer: one gray tile per input channel
            tiles, labels = weights[0][:, None], list(range(weights.shape[1]))
        return Result(numbers, lambda text: kernel_grid(tiles, labels, text), v["output"])
