"""The seeds' other visualizations as operations: deconv, saliency, gradcam, occlusion, layers, filters.

Each has its fields, a parse that refuses bad input with a BadRequest naming the field, and a run
that returns the numbers (the JSON answer) and the picture (the PNG answer). All of them share
one path for the upload (decode, resize, crop), target selection and rendering.
"""
from dataclasses import dataclass, field
from typing import Callable

import torch

from .attribution import (OCCLUSION_GRAY, SALIENCY_METHODS, gradcam, occlusion, occlusion_positions, probabilities,
                          saliency)
from .deconvnet import project
from .fields import BadRequest, Field, parse_fields
from .image import normalize, to_png
from .network import LAYER_COUNT, device_of, output_channels
from .operations import check_side, parse_upload
from .pictures import heatmap_over, kernel_grid, side_by_side, signed_unit, table_png
from .summary import conv_layers, kernels, layer_table

CLASSES = 1000
MAX_IMAGE_SIDE = 512  # the JSON of a 512 px deconv reconstruction is about 16 MB
MAX_OCCLUSION_WINDOWS = 64 * 64
MAX_OCCLUSION_PIXELS = 4 * 13 * 13 * 224 * 224  # occluded pixels forwarded: 4x the default request
MAX_JSON_WEIGHTS = 300_000  # `filters` JSON without `filter`: layers up to this many weights

LAYER = (0, LAYER_COUNT - 1)
OUTPUT = Field("output", str, "png", choices=("png", "json"))
SIZE = Field("size", int, 224, 32, MAX_IMAGE_SIDE)
TARGET = Field("target", int, None, 0, CLASSES - 1, nullable=True)
FILTER = Field("filter", int, None, 0, nullable=True)


@dataclass(frozen=True)
class ExplainRequest:
    operation: str
    values: dict  # validated fields, `output` included
    image: torch.Tensor | None = None  # (3, size, size) in [0, 1], for the image operations


@dataclass
class Explained:
    numbers: dict  # the JSON answer; tensors become nested lists
    picture: Callable[[dict], bytes] = field(repr=False)  # PNG text entries -> the PNG answer

    def json(self) -> dict:
        return {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in self.numbers.items()}

    def png(self, text: dict) -> bytes:
        """The picture, with the scalar numbers and `text` as PNG text entries."""
        scalars = {k: v for k, v in self.numbers.items() if isinstance(v, (int, float, str))}
        return self.picture({**scalars, **text})


@dataclass(frozen=True)
class Operation:
    fields: list
    run: Callable
    check: Callable = lambda values, net: None
    takes_image: bool = True


def _target(net, image, target):
    """The requested class, or the top-1 class; with its probability for this image."""
    probs = probabilities(net, image[None].to(device_of(net)))[0]
    target = int(probs.argmax()) if target is None else target
    return target, float(probs[target])


def _check_filter(values, net):
    """An optional `filter` must be a channel of `layer`'s output."""
    layer, filter = values["layer"], values["filter"]
    channels = output_channels(net.features, layer)
    if filter is not None and filter >= channels:
        raise BadRequest("filter", f"{filter} is out of range; layer {layer} has {channels} channels: "
                                   f"expected an integer in 0..{channels - 1} or null")


def _check_deconv(values, net):
    check_side(net.features, values["layer"], values["size"])
    _check_filter(values, net)


def _deconv(net, request):
    v, image = request.values, request.image
    x = normalize(image[None].to(device_of(net)))
    found = project(net.features, v["layer"], x, v["filter"])
    numbers = {"operation": "deconv", "layer": v["layer"], "filter": found.filter, "position": list(found.position),
               "activation": found.activation, "space": "network input (ImageNet-normalized)",
               "reconstruction": found.reconstruction}
    return Explained(numbers, lambda text: to_png(side_by_side(image, signed_unit(found.reconstruction)), text))


def _class_map(net, request, name, compute, **described):
    """A map of where the model looked for the target class: the target (requested or top-1) and
    its probability, `compute(pixels on the net's device, target)` -> (h, w) map under `name`,
    and as the picture the map over the image."""
    image = request.image
    target, probability = _target(net, image, request.values["target"])
    heat = compute(image.to(device_of(net)), target).cpu()
    numbers = {"operation": request.operation, **described, "target": target, "probability": probability,
               name: heat}
    return Explained(numbers, lambda text: to_png(heatmap_over(image, heat), text))


def _saliency(net, request):
    method = request.values["method"]
    return _class_map(net, request, "saliency", lambda x, target: saliency(net, x[None], [target], method)[0],
                      method=method)


def _gradcam(net, request):
    layer = request.values["layer"]
    return _class_map(net, request, "heatmap", lambda x, target: gradcam(net, x[None], [target], layer)[0],
                      layer=layer)


def _check_occlusion(values, net):
    size, window, stride = values["size"], values["window"], values["stride"]
    if window > size:
        raise BadRequest("window", f"{window} is larger than the image ({size} px); expected at most {size}")
    windows = len(occlusion_positions(size, window, stride)) ** 2
    if windows > MAX_OCCLUSION_WINDOWS or windows * size * size > MAX_OCCLUSION_PIXELS:
        raise BadRequest("stride", f"{windows} window positions of a {size} px image is too much work; at most "
                                   f"{MAX_OCCLUSION_WINDOWS} positions and {MAX_OCCLUSION_PIXELS} pixels in all: "
                                   "raise stride or lower size")


def _occlusion(net, request):
    window, stride = request.values["window"], request.values["stride"]
    # ZFNet's figure: the target's probability by position; low (blue) where the square hurt most.
    return _class_map(net, request, "heatmap", lambda x, target: occlusion(net, x, target, window, stride),
                      window=window, stride=stride, gray=OCCLUSION_GRAY)


def _layers(net, request):
    size = request.values["size"]
    rows = layer_table(net, size)
    columns = ["index", "name", "type", "channels", "spatial", "params"]
    lines = [[r["index"], r["name"], r["type"], r["channels"],
              "x".join(map(str, r["spatial"])) if r["spatial"] else None, f"{r['params']:,}"] for r in rows]
    numbers = {"operation": "layers", "input_size": size, "layers": rows}
    return Explained(numbers, lambda text: table_png(columns, lines, text))


def _check_filters(values, net):
    layer = values["layer"]
    convs = conv_layers(net.features)
    if layer not in convs:
        raise BadRequest("layer", f"layer {layer} is {type(net.features[layer]).__name__}, not a convolution; "
                                  f"expected one of {', '.join(map(str, convs))}")
    _check_filter(values, net)
    weight = net.features[layer].weight
    if values["filter"] is None and values["output"] == "json" and weight.numel() > MAX_JSON_WEIGHTS:
        raise BadRequest("filter", f"layer {layer} has {weight.numel()} weights, too many for one JSON answer "
                                   f"(at most {MAX_JSON_WEIGHTS}); send filter to get one filter's kernels")


def _filters(net, request):
    v = request.values
    weights = kernels(net.features, v["layer"], v["filter"])
    numbers = {"operation": "filters", "layer": v["layer"], "filter": v["filter"], "shape": list(weights.shape),
               "kernels": weights}
    if v["filter"] is None:
        tiles, labels = weights, list(range(len(weights)))
    elif weights.shape[1] == 3:
        tiles, labels = weights, [v["filter"]]
    else:  # one filter of a deep layer: one gray tile per input channel
        tiles, labels = weights[0][:, None], list(range(weights.shape[1]))
    return Explained(numbers, lambda text: kernel_grid(tiles, labels, text))


OPERATIONS = {
    "deconv": Operation([Field("layer", int, 30, *LAYER), FILTER, SIZE, OUTPUT], _deconv, _check_deconv),
    "saliency": Operation([Field("method", str, "vanilla", choices=SALIENCY_METHODS), TARGET, SIZE, OUTPUT],
                          _saliency),
    "gradcam": Operation([Field("layer", int, 42, *LAYER), TARGET, SIZE, OUTPUT], _gradcam),
    "occlusion": Operation([Field("window", int, 32, 1, MAX_IMAGE_SIDE), Field("stride", int, 16, 1, MAX_IMAGE_SIDE),
                            TARGET, SIZE, OUTPUT], _occlusion, _check_occlusion),
    "layers": Operation([Field("size", int, 224, 32, 1024), OUTPUT], _layers, takes_image=False),
    "filters": Operation([Field("layer", int, 0, *LAYER), FILTER, OUTPUT], _filters, _check_filters,
                         takes_image=False),
}


def parse_explain(operation: str, fields: dict, net) -> ExplainRequest:
    spec = OPERATIONS[operation]
    if spec.takes_image:
        values, image = parse_upload(fields, spec.fields)
    else:
        values, image = parse_fields(fields, spec.fields), None
    spec.check(values, net)
    return ExplainRequest(operation, values, image)


def run_explain(net, request: ExplainRequest) -> Explained:
    return OPERATIONS[request.operation].run(net, request)
