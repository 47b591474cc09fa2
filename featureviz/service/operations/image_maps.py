"""The operations that map an uploaded image: deconv (Zeiler & Fergus's projection of a filter's
strongest activation back to the pixels), and where the model looked for a class: saliency
(gradients, or integrated gradients), gradcam and occlusion.

Each has its fields, a check against the network that refuses bad input with a BadRequest naming
the field, and a run giving a Result: the numbers (the JSON answer) and the picture (the PNG)."""
from ...attribution.deconvnet import project
from ...attribution.integrated_gradients import DEFAULT_STEPS, MAX_STEPS, integrated_gradients
from ...attribution.maps import OCCLUSION_GRAY, SALIENCY_METHODS, gradcam, occlusion, occlusion_positions, probabilities, saliency
from ...model.network import LAYER_COUNT, device_of, normalize
from ...pictures import heatmap_over, side_by_side, signed_unit, to_png
from ..answers import Result
from ..checks import check_channels, check_side
from ..fields import Field
from ..refusals import BadRequest
from .request import parser

CLASSES = 1000
MAX_IMAGE_SIDE = 512  # the JSON of a deconv reconstruction grows with the square of the side
MAX_OCCLUSION_WINDOWS = 64 * 64
MAX_OCCLUSION_PIXELS = 4 * 13 * 13 * 224 * 224  # occluded pixels forwarded: 4x the default request

LAYER = (0, LAYER_COUNT - 1)
OUTPUT = Field("output", str, "png", choices=("png", "json"))
SIZE = Field("size", int, 224, 32, MAX_IMAGE_SIDE)
TARGET = Field("target", int, None, 0, CLASSES - 1, nullable=True)
FILTER = Field("filter", int, None, 0, nullable=True)


def _target(net, image, target):
    """The requested class, or the top-1 class; with its probability for this image."""
    probs = probabilities(net, image[None].to(device_of(net)))[0]
    target = int(probs.argmax()) if target is None else target
    return target, float(probs[target])


def check_deconv(values, model):
    check_side(model.features, values["layer"], values["size"])
    check_channels(model.features, values["layer"], [values["filter"]], nullable=True)


def deconv(model, request):
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


def saliency_map(model, request):
    method = request.values["method"]
    if method == "integrated_gradients":  # the map: each pixel's largest |attribution| over its colours
        steps = request.values["steps"]
        return _class_map(model, request, "saliency", lambda x, target: integrated_gradients(
            model.net, x[None], [target], steps)[0].abs().amax(dim=0), method=method, steps=steps)
    return _class_map(model, request, "saliency",
                      lambda x, target: saliency(model.net, x[None], [target], method)[0], method=method)


def gradcam_map(model, request):
    layer = request.values["layer"]
    return _class_map(model, request, "heatmap",
                      lambda x, target: gradcam(model.net, x[None], [target], layer)[0], layer=layer)


def check_occlusion(values, model):
    size, window, stride = values["size"], values["window"], values["stride"]
    if window > size:
        raise BadRequest("window", f"{window} is larger than the image ({size} px); expected at most {size}")
    windows = len(occlusion_positions(size, window, stride)) ** 2
    if windows > MAX_OCCLUSION_WINDOWS or windows * size * size > MAX_OCCLUSION_PIXELS:
        raise BadRequest("stride", f"{windows} window positions of a {size} px image is too much work; at most "
                                   f"{MAX_OCCLUSION_WINDOWS} positions and {MAX_OCCLUSION_PIXELS} pixels in all: "
                                   "raise stride or lower size")


def occlusion_map(model, request):
    window, stride = request.values["window"], request.values["stride"]
    # ZFNet's figure: the target's probability by position; low (blue) where the square hurt most.
    return _class_map(model, request, "heatmap", lambda x, target: occlusion(model.net, x, target, window, stride),
                      window=window, stride=stride, gray=OCCLUSION_GRAY)


DECONV_FIELDS = [Field("layer", int, 30, *LAYER), FILTER, SIZE, OUTPUT]
SALIENCY_FIELDS = [Field("method", str, "vanilla", choices=(*SALIENCY_METHODS, "integrated_gradients")),
                   Field("steps", int, DEFAULT_STEPS, 1, MAX_STEPS), TARGET, SIZE, OUTPUT]
GRADCAM_FIELDS = [Field("layer", int, 42, *LAYER), TARGET, SIZE, OUTPUT]
OCCLUSION_FIELDS = [Field("window", int, 32, 1, MAX_IMAGE_SIDE), Field("stride", int, 16, 1, MAX_IMAGE_SIDE),
                    TARGET, SIZE, OUTPUT]
parse_deconv = parser("deconv", DECONV_FIELDS, check_deconv)
parse_saliency = parser("saliency", SALIENCY_FIELDS)
parse_gradcam = parser("gradcam", GRADCAM_FIELDS)
parse_occlusion = parser("occlusion", OCCLUSION_FIELDS, check_occlusion)
