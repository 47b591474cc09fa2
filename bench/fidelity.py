"""How close each precision's image comes to strict fp32's: the activation it reaches, beside fp32
from another seed (how much the activation reached moves anyway).

    .venv/bin/python -m bench fidelity [--device cpu] [--precisions bf16] [--layers 7 14 20 30 40]
                                       [--filters 0 1] [--seed 7] [--scales 12]

Prints Markdown tables: per layer and filter, and the mean and largest differences.
"""
import statistics

import torch

from featureviz.model import weights
from featureviz.model.network import build_model
from featureviz.optim.param.pixel import Schedule

from .cli import section_parser
from .ours import visualize
from .table import Report


def report(out: Report, features, seed, layers, filters, precisions, schedule=Schedule()):
    """The per-filter table (with relative differences to fp32) row by row, then the summary."""
    spread = {name: [] for name in [*precisions, "fp32, seed + 1"]}
    scales = "article defaults" if schedule == Schedule() else f"{len(schedule.sides())} scales"
    table = out.table(["layer", "filter", "fp32", *precisions, "fp32, seed + 1"],
                      f"### Activation reached vs strict fp32 (seed {seed}, {scales})")
    for layer in layers:
        for f in filters:
            ref = visualize(features, layer, f, schedule, seed, "fp32").activation_final
            reached = {p: visualize(features, layer, f, schedule, seed, p).activation_final for p in precisions}
            reached["fp32, seed + 1"] = visualize(features, layer, f, schedule, seed + 1, "fp32").activation_final
            cells = []
            for name, value in reached.items():
                relative = (value - ref) / abs(ref)
                spread[name].append(relative)
                cells.append(f"{value:.4g} ({100 * relative:+.2f}%)")
            table.row(layer, f, f"{ref:.4g}", *cells)
    out.say()
    out.rows(["", "mean difference", "mean abs. difference", "max abs. difference"],
             [(name, f"{100 * statistics.mean(v):+.2f}%", f"{100 * statistics.mean(map(abs, v)):.2f}%",
               f"{100 * max(map(abs, v)):.2f}%") for name, v in spread.items()])


def main(argv=None):
    parser = section_parser("fidelity", __doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--precisions", nargs="+", default=["bf16"])
    parser.add_argument("--layers", type=int, nargs="+", default=[7, 14, 20, 30, 40])
    parser.add_argument("--filters", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scales", type=int, default=Schedule().upscaling_steps,
                        help="of the article's schedule (default: all of them)")
    args = parser.parse_args(argv)
    features = build_model(weights.resolve(args.weights).state_dict(), args.device).features
    out = Report()
    out.say(f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, weights {args.weights}\n")
    report(out, features, args.seed, args.layers, args.filters, args.precisions,
           Schedule(upscaling_steps=args.scales))
