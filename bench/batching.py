"""Does an image's gradient depend on the batch it is computed in? One Adam step's input gradient.

For each side the optimization visits, the gradient of one image's objective (its filter's mean
activation, through `network.channel_trunk` once for the batch and its own `channel_tail`) is
computed in a batch of N beside other images, beside different other images, in the batch's
last slot, and alone (`featureviz.optim.readout`, the engine's network for channel objectives; the
gradient by `featureviz.optim.batching.output_and_gradient`, as the engine's probe computes it);
the table gives the largest absolute differences. Any non-zero value is amplified by Adam into a
different image (docs/performance.md, "Batching: exact batches").

    .venv/bin/python -m bench batching --layer 7 --batch 4 [--device cuda --precision tf32] [--sides 56 67]
"""
import platform

import torch

from featureviz.model import weights
from featureviz.model.network import build_model
from featureviz.optim import precision as arithmetic
from featureviz.optim.batching import output_and_gradient
from featureviz.optim.objectives import channel
from featureviz.optim.readout import readout
from featureviz.optim.param.pixel import Schedule

from .cli import section_parser
from .table import Report


def each_filter(features, layer, filters):
    """(n, 3, h, w) images -> each image's mean activation of its own filter, as a batch of renders."""
    objectives = [channel(layer, f) for f in filters]
    network = readout(features, objectives)
    return lambda x: torch.stack([objective(found)[0] for objective, found in zip(objectives, network(list(x.split(1))))])


def input_gradient(objective, images, precision):
    """The gradient of the sum of each image's objective, with respect to the images."""
    return output_and_gradient(objective, images, precision)[1]


def main(argv=None):
    parser = section_parser("batching", __doc__)
    parser.add_argument("--layer", type=int, default=7)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=arithmetic.PRECISIONS)
    parser.add_argument("--sides", type=int, nargs="+", default=Schedule().sides(),
                        help="default: every side of the article's schedule")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    features = build_model(weights.resolve("random").state_dict(), device).features
    n = args.batch
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    report = Report()
    report.say(f"{args.device}: {where}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
               f"{args.precision}, layer {args.layer}, batch of {n}\n")
    table = report.table(["side", "other images changed", "moved to the last slot", "alone (batch of 1)"])
    # The image under test has filter 0; the other images filters of their own.
    objectives = {placing: each_filter(features, args.layer, filters)
                  for placing, filters in (("first", range(n)), ("others changed", [0, *range(n, 2 * n - 1)]),
                                           ("last", [*range(1, n), 0]), ("alone", [0]))}
    for side in args.sides:
        g = torch.Generator().manual_seed(side)
        one, others, other_others = (torch.randn(k, 3, side, side, generator=g).to(device)
                                     for k in (1, n - 1, n - 1))
        batches = {"first": (torch.cat([one, others]), 0), "others changed": (torch.cat([one, other_others]), 0),
                   "last": (torch.cat([others, one]), -1), "alone": (one, 0)}
        first, changed, last, alone = (input_gradient(objectives[placing], images, args.precision)[slot]
                                       for placing, (images, slot) in batches.items())
        table.row(side, *(f"{(first - other).abs().max().item():.2g}" for other in (changed, last, alone)))
