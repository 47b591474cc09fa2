"""The operations that map an uploaded image: deconv (Zeiler & Fergus's projection of a filter's
strongest activation back to the pixels), and the class maps, where the model looked for a class:
saliency (gradients, or integrated gradients), gradcam and occlusion.

Each has its fields, a check against the network that refuses bad input with a BadRequest naming
the field, and a Result: the numbers (the JSON answer) and the picture (the PNG). A class map
overrides only `heat` and what it says of itself (pytorch-grad-cam's shape)."""
from ...attribution.deconvnet import project
from ...attribution.integrated_gradients import DEFAULT_STEPS, MAX_STEPS, integrated_gradients
from ...attribution.maps import OCCLUSION_GRAY, SALIENCY_METHODS, gradcam, occlusion, occlusion_positions, probabilities, saliency
from ...model.network import LAYER_COUNT, device_of, normalize
from ...pictures import heatmap_over, side_by_side, signed_unit, to_png
from ..answers import Result
from ..checks import check_channels, check_side
from ..fields import Field
from ..refusals import BadRequest
from .base import ImageOperation

CLASSES = 1000
MAX_IMAGE_SIDE = 512  # the JSON of a deconv reconstruction grows with the square of the side
MAX_OCCLUSION_WINDOWS = 64 * 64
MAX_OCCLUSION_PIXELS = 4 * 13 * 13 * 224 * 224  # occluded pixels forwarded: 4x the default request

LAYER = (0, LAYER_COUNT - 1)
OUTPUT = Field("output", str, "png", choices=("png", "json"))
SIZE = Field("size", int, 224, 32, MAX_IMAGE_SIDE)
TARGET = Field("target", int, None, 0, CLASSES - 1, nullable=True)
FILTER = Field("filter", int, None, 0, nullable=True)


class Deconv(ImageOperation):
    name = "deconv"
    fields = [Field("layer", int, 30, *LAYER), FILTER, SIZE, OUTPUT]

    def check(self, values):
        check_side(self.model.features, values["layer"], values["size"])
        check_channels(self.model.features, values["layer"], [values["filter"]], nullable=True)

    def result(self, request):
        v, image, net = request.values, request.image, self.model.net
        found = project(net.features, v["layer"], normalize(image[None].to(device_of(net))), v["filter"])
        numbers = {"operation": self.name, "layer": v["layer"], "filter": found.filter,
                   "position": list(found.position), "activation": found.activation,
                   "space": "network input (ImageNet-normalized)", "reconstruction": found.reconstruction}
        return Result(numbers, lambda text: to_png(side_by_side(image, signed_unit(found.reconstruction)), text),
                      v["output"])


class ClassMap(ImageOperation):
    """Where the model looked for the target class (requested, or the top-1): the target and its
    probability for the image, a (h, w) map under `map_name`, and as the picture the map over
    the image."""
    needs_classifier = True
    explains = True
    map_name = "heatmap"

    def heat(self, pixels, target: int, values: dict):
        """(h, w) map of `pixels` ((3, S, S) on the net's device) for `target`."""
        raise NotImplementedError

    def described(self, values: dict) -> dict:
        """The fields the answer repeats, before the target."""
        return {}

    def result(self, request):
        image, net, values = request.image, self.model.net, request.values
        probs = probabilities(net, image[None].to(device_of(net)))[0]
        target = int(probs.argmax()) if values["target"] is None else values["target"]
        heat = self.heat(image.to(device_of(net)), target, values).cpu()
        numbers = {"operation": self.name, **self.described(values), "target": target,
                   "probability": float(probs[target]), self.map_name: heat}
        return Result(numbers, lambda text: to_png(heatmap_over(image, heat), text), values["output"])


class Saliency(ClassMap):
    name = "saliency"
    map_name = "saliency"
    fields = [Field("method", str, "vanilla", choices=(*SALIENCY_METHODS, "integrated_gradients")),
              Field("steps", int, DEFAULT_STEPS, 1, MAX_STEPS), TARGET, SIZE, OUTPUT]

    def heat(self, pixels, target, values):
        if values["method"] == "integrated_gradients":  # each pixel's largest |attribution| over its colours
            return integrated_gradients(self.model.net, pixels[None], [target], values["steps"])[0].abs().amax(dim=0)
        return saliency(self.model.net, pixels[None], [target], values["method"])[0]

    def described(self, values):
        if values["method"] == "integrated_gradients":
            return {"method": values["method"], "steps": values["steps"]}
        return {"method": values["method"]}


class GradCam(ClassMap):
    name = "gradcam"
    fields = [Field("layer", int, 42, *LAYER), TARGET, SIZE, OUTPUT]

    def heat(self, pixels, target, values):
        return gradcam(self.model.net, pixels[None], [target], values["layer"])[0]

    def described(self, values):
        return {"layer": values["layer"]}


class Occlusion(ClassMap):
    """ZFNet's figure: the target's probability by position of a gray square; low (blue) where
    the square hurt most."""
    name = "occlusion"
    fields = [Field("window", int, 32, 1, MAX_IMAGE_SIDE), Field("stride", int, 16, 1, MAX_IMAGE_SIDE),
              TARGET, SIZE, OUTPUT]

    def check(self, values):
        size, window, stride = values["size"], values["window"], values["stride"]
        if window > size:
            raise BadRequest("window", f"{window} is larger than the image ({size} px); expected at most {size}")
        windows = len(occlusion_positions(size, window, stride)) ** 2
        if windows > MAX_OCCLUSION_WINDOWS or windows * size * size > MAX_OCCLUSION_PIXELS:
            raise BadRequest("stride", f"{windows} window positions of a {size} px image is too much work; at most "
                                       f"{MAX_OCCLUSION_WINDOWS} positions and {MAX_OCCLUSION_PIXELS} pixels in all: "
                                       "raise stride or lower size")

    def heat(self, pixels, target, values):
        return occlusion(self.model.net, pixels, target, values["window"], values["stride"])

    def described(self, values):
        return {"window": values["window"], "stride": values["stride"], "gray": OCCLUSION_GRAY}
