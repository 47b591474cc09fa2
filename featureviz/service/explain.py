"""The operations that look at an image or at the network: activations, and the seeds' other
visualizations (deconv, saliency, gradcam, occlusion, layers, filters).

Each has its fields and a parse that refuses bad input with a BadRequest naming the field. Its run
returns a Result: the numbers (the JSON answer) and the picture (the PNG answer). The image
operations share one path for the upload (decode, resize, crop), target selection and rendering.
"""
from dataclasses import dataclass

import torch

from ..attribution.activations import channel_means, top_channels
from ..attribution.deconvnet import project
from ..attribution.integrated_gradients import DEFAULT_STEPS, MAX_STEPS, integrated_gradients
from ..attribution.maps import OCCLUSION_GRAY, SALIENCY_METHODS, gradcam, occlusion, occlusion_positions, probabilities, saliency
from ..model.geometry import conv_layers
from ..model.network import LAYER_COUNT, device_of, normalize
from ..model.summary import kernels, layer_table
from ..pictures import heatmap_over, kernel_grid, side_by_side, signed_unit, table_png, to_png
from .checks import check_channels, check_side
from .fields import Field, parse_fields
from .refusals import BadRequest
from .results import Result
from .uploads import parse_upload

CLASSES = 1000
MAX_IMAGE_SIDE = 512  # the JSON of a deconv reconstruction grows with the square of the side
MAX_OCCLUSION_WINDOWS = 64 * 64
MAX_OCCLUSION_PIXELS = 4 * 13 * 13 * 224 * 224  # occluded pixels forwarded: 4x the default request
MAX_JSON_WEIGHTS = 300_000  # `filters` JSON without `filter`: layers up to this many weights

LAYER = (0, LAYER_COUNT - 1)
OUTPUT = Field("output", str, "png", choices=("png", "json"))
SIZE = Field("size", int, 224, 32, MAX_IMAGE_SIDE)
TARGET = Field("target", int, None, 0, CLASSES - 1, nullable=True)
FILTER = Field("filter", int, None, 0, nullable=True)
ACTIVATIONS_FIELDS = [Field("layer", int, 42, *LAYER), Field("size", int, 224, 1, 1024)]


@dataclass(frozen=True)
class ImageRequest:
    """An image operation's request, or one about the network (`image` None)."""
    operation: str
    values: dict  # validated fields
    image: torch.Tensor | None = None  # (3, size, size) in [0, 1]


def parse_activations(fields: dict, model) -> ImageRequest:
    values, image = parse_upload(fields, ACTIVATIONS_FIELDS)
    check_side(model.features, values["layer"], values["size"])
    return ImageRequest("activations", values, image)


def run_activations(worker, requests: list[ImageRequest]) -> list[Result]:
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


def _target(net, image, target):
    """The requested class, or the top-1 class; with its probability for this image."""
    probs = probabilities(net, image[None].to(device_of(net)))[0]
    target = int(probs.argmax()) if target is None else target
    return target, float(probs[target])


def _check_deconv(values, model):
    check_side(model.features, values["layer"], values["size"])
    check_channels(model.features, values["layer"], [values["filter"]], nullable=True)


def _deconv(model, request):
    v, image = request.values, request.image
    x = normalize(image[None].to(device_of(model.net)))
    found = project(model.net.features, v["layer"], x, v["filter"])
    numbers = {"operation": "deconv", "layer": v["layer"], "filter": found.filter, "position": list(found.position),
               "activation": found.activation, "space": "network input (ImageNet-normalized)",
               "reconstruction": found.reconstruction}
    return Result(numbers, lambda text: to_png(side_by_side(image, signed_unit(found.reconstruction)), text),
                  v["output"])


def _class_map(model, request, name, compute, **described):
    """A map of where the model looked for the target class: the target (requested or top-1) and
    its probability, `compute(pixels on the net's device, target)` -> (h, w) map under `name`,
    and as the picture the map over the image."""
    image, net = request.image, model.net
    target, probability = _target(net, image, request.values["target"])
    heat = compute(image.to(device_of(net)), target).cpu()
    numbers = {"operation": request.operation, **described, "target": target, "probability": probability,
               name: heat}
    return Result(numbers, lambda text: to_png(heatmap_over(image, heat), text), request.values["output"])


def _saliency(model, request):
    method = request.values["method"]
    if method == "integrated_gradients":  # the map: each pixel's largest |attribution| over its colours
        steps = request.values["steps"]
        return _class_map(model, request, "saliency", lambda x, target: integrated_gradients(
            model.net, x[None], [target], steps)[0].abs().amax(dim=0), method=method, steps=steps)
    return _class_map(model, request, "saliency",
                      lambda x, target: saliency(model.net, x[None], [target], method)[0], method=method)


def _gradcam(model, request):
    layer = request.values["layer"]
    return _class_map(model, request, "heatmap",
                      lambda x, target: gradcam(model.net, x[None], [target], layer)[0], layer=layer)


def _check_occlusion(values, model):
    size, window, stride = values["size"], values["window"], values["stride"]
    if window > size:
        raise BadRequest("window", f"{window} is larger than the image ({size} px); expected at most {size}")
    windows = len(occlusion_positions(size, window, stride)) ** 2
    if windows > MAX_OCCLUSION_WINDOWS or windows * size * size > MAX_OCCLUSION_PIXELS:
        raise BadRequest("stride", f"{windows} window positions of a {size} px image is too much work; at most "
                                   f"{MAX_OCCLUSION_WINDOWS} positions and {MAX_OCCLUSION_PIXELS} pixels in all: "
                                   "raise stride or lower size")


def _occlusion(model, request):
    window, stride = request.values["window"], request.values["stride"]
    # ZFNet's figure: the target's probability by position; low (blue) where the square hurt most.
    return _class_map(model, request, "heatmap", lambda x, target: occlusion(model.net, x, target, window, stride),
                      window=window, stride=stride, gray=OCCLUSION_GRAY)


def _layers(model, request):
    size = request.values["size"]
    rows = layer_table(model.net, size, model.has_classifier)
    columns = ["index", "name", "type", "channels", "spatial", "params"]
    lines = [[r["index"], r["name"], r["type"], r["channels"],
              "x".join(map(str, r["spatial"])) if r["spatial"] else None, f"{r['params']:,}"] for r in rows]
    numbers = {"operation": "layers", "input_size": size, "layers": rows}
    return Result(numbers, lambda text: table_png(columns, lines, text), request.values["output"])


def _check_filters(values, model):
    layer, features = values["layer"], model.features
    convs = conv_layers(features)
    if layer not in convs:
        raise BadRequest("layer", f"layer {layer} is {type(features[layer]).__name__}, not a convolution; "
                                  f"expected one of {', '.join(map(str, convs))}")
    check_channels(features, layer, [values["filter"]], nullable=True)
    weight = features[layer].weight
    if values["filter"] is None and values["output"] == "json" and weight.numel() > MAX_JSON_WEIGHTS:
        raise BadRequest("filter", f"layer {layer} has {weight.numel()} weights, too many for one JSON answer "
                                   f"(at most {MAX_JSON_WEIGHTS}); send filter to get one filter's kernels")


def _filters(model, request):
    v = request.values
    weights = kernels(model.features, v["layer"], v["filter"])
    numbers = {"operation": "filters", "layer": v["layer"], "filter": v["filter"], "shape": list(weights.shape),
               "kernels": weights}
    if v["filter"] is None:
        tiles, labels = weights, list(range(len(weights)))
    elif weights.shape[1] == 3:
        tiles, labels = weights, [v["filter"]]
    else:  # one filter of a deep layer: one gray tile per input channel
        tiles, labels = weights[0][:, None], list(range(weights.shape[1]))
    return Result(numbers, lambda text: kernel_grid(tiles, labels, text), v["output"])


@dataclass(frozen=True)
class Explanation:
    """One of the seeds' visualizations: its fields, a check against the network, and its run."""
    fields: list
    run: callable  # (model, ImageRequest) -> Result
    check: callable = lambda values, model: None
    takes_image: bool = True
    needs_classifier: bool = False  # reads class scores

    def parser(self, name):
        def parse(fields: dict, model) -> ImageRequest:
            if self.takes_image:
                values, image = parse_upload(fields, self.fields)
            else:
                values, image = parse_fields(fields, self.fields), None
            self.check(values, model)
            return ImageRequest(name, values, image)
        return parse

    def runner(self):
        return lambda worker, requests: [self.run(worker.model, request) for request in requests]


EXPLANATIONS = {
    "deconv": Explanation([Field("layer", int, 30, *LAYER), FILTER, SIZE, OUTPUT], _deconv, _check_deconv),
    "saliency": Explanation([Field("method", str, "vanilla", choices=(*SALIENCY_METHODS, "integrated_gradients")),
                             Field("steps", int, DEFAULT_STEPS, 1, MAX_STEPS), TARGET, SIZE, OUTPUT],
                            _saliency, needs_classifier=True),
    "gradcam": Explanation([Field("layer", int, 42, *LAYER), TARGET, SIZE, OUTPUT], _gradcam, needs_classifier=True),
    "occlusion": Explanation([Field("window", int, 32, 1, MAX_IMAGE_SIDE), Field("stride", int, 16, 1, MAX_IMAGE_SIDE),
                              TARGET, SIZE, OUTPUT], _occlusion, _check_occlusion, needs_classifier=True),
    "layers": Explanation([Field("size", int, 224, 32, 1024), OUTPUT], _layers, takes_image=False),
    "filters": Explanation([Field("layer", int, 0, *LAYER), FILTER, OUTPUT], _filters, _check_filters,
                           takes_image=False),
}
