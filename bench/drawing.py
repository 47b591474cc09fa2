"""param fft against lucent's render_vis and against our pixel default: seconds, the activation
reached and the share of saturated channel values, one run each per layer, on one machine.

    python -m bench drawing --weights hed --layers 14 30 40 --filter 62 --images docs/images/drawing
    [--steps 128]: fft and lucent on a shorter schedule, both the same

Each method with its defaults: pixel is the article's schedule (12 scales, 20 steps each, 56 to
408 px); fft is featureviz.optim.render_fft (128 px, 512 steps, 224 px into the network, the
layers up to the target); lucent is render_vis as users call it (the same image, schedule and
transforms, the whole network every step). The activation is the channel's mean at the layer for
the returned image resized to 224 px, measured the same way for all three. Saturated: the share
of the picture's 8-bit channel values <= 0.02 or >= 0.98. Prints a Markdown table; --images
saves each picture and a side-by-side figure per layer.
"""
import os
import platform

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from featureviz.attribution.activations import channel_means
from featureviz.model import weights
from featureviz.model.network import build_model
from serving import hed_weights

from .ours import draw, visualize

from .cli import section_parser
from .peers import lucent_visualize
from .table import Report
from .timing import timed


def saturated(image: torch.Tensor) -> float:
    values = (image.clamp(0, 1) * 255).round() / 255
    return ((values <= 0.02) | (values >= 0.98)).float().mean().item()


def activation(features, layer, filter, image):
    """The channel's mean activation for the picture resized to 224 px, as `activations` measures it."""
    resized = F.interpolate(image[None], size=(224, 224), mode="bilinear", align_corners=False)
    return channel_means(features, layer, resized)[0, filter].item()


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def lucent_seeded(model, layer, filter, steps):
    torch.manual_seed(0), np.random.seed(0)
    return lucent_visualize(model, layer, filter, thresholds=(steps,))


def main(argv=None):
    parser = section_parser("drawing", __doc__)
    parser.add_argument("--weights", default="hed", help="hed, random, or any WEIGHTS= value")
    parser.add_argument("--layers", type=int, nargs="+", default=[14, 30, 40])
    parser.add_argument("--filter", type=int, default=62)
    parser.add_argument("--images", help="folder for the pictures")
    parser.add_argument("--steps", type=int, default=512, help="Adam steps of fft and lucent (their default: 512)")
    args = parser.parse_args(argv)
    choice = hed_weights.weights_choice(hed_weights.fetch()) if args.weights == "hed" else args.weights
    model = build_model(weights.resolve(choice).state_dict())
    features = model.features
    report = Report()
    report.say(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
               f"weights {args.weights}, filter {args.filter}, fft and lucent {args.steps} steps\n")
    table = report.table(["layer", "method", "seconds", "/ fft", "activation", "saturated"])
    for layer in args.layers:
        methods = {"pixel": lambda: visualize(features, layer, args.filter).image,
                   "fft": lambda: draw(features, layer, args.filter, steps=args.steps, seed=0).image,
                   "lucent": lambda: lucent_seeded(model, layer, args.filter, args.steps)}
        runs = {method: timed(run)[::-1] for method, run in methods.items()}  # method: (image, seconds)
        for method, (image, seconds) in runs.items():
            table.row(layer, method, f"{seconds:.1f}", f"{seconds / runs['fft'][1]:.2f}",
                      f"{activation(features, layer, args.filter, image):.4g}", f"{100 * saturated(image):.1f}%")
        if args.images:
            save(args.images, layer, args.filter, {m: image for m, (image, _) in runs.items()})


def save(folder, layer, filter, images):
    os.makedirs(folder, exist_ok=True)
    tiles = []
    for method, image in images.items():
        picture = Image.fromarray((image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
        picture.save(os.path.join(folder, f"layer{layer}-filter{filter}-{method}.png"))
        tiles.append(picture.resize((256, 256), Image.LANCZOS))
    figure = Image.new("RGB", (len(tiles) * 256 + (len(tiles) - 1) * 8, 256), "white")
    for k, tile in enumerate(tiles):
        figure.paste(tile, (k * (256 + 8), 0))
    figure.save(os.path.join(folder, f"layer{layer}-filter{filter}.jpg"), quality=90)
