"""How close each precision's image comes to strict fp32's: the activation it reaches, beside fp32
from another seed (how much the activation reached moves anyway).

    .venv/bin/python -m scripts.fidelity [--device cpu] [--precisions bf16] [--layers 7 14 20 30 40]
                                          [--filters 0 1] [--seed 7]

Prints Markdown tables: per layer and filter, and the mean and largest differences.
"""
import argparse
import statistics

import torch

from featureviz.model import weights
from featureviz.model.network import build_model
from featureviz.optim.render import visualize


def rows_and_summary(features, seed, layers, filters, precisions):
    """(rows of the per-filter table, rows of the summary table) with relative differences to fp32."""
    rows, spread = [], {name: [] for name in [*precisions, "fp32, seed + 1"]}
    for layer in layers:
        for f in filters:
            ref = visualize(features, layer, f, seed=seed, precision="fp32").activation_final
            reached = {p: visualize(features, layer, f, seed=seed, precision=p).activation_final for p in precisions}
            reached["fp32, seed + 1"] = visualize(features, layer, f, seed=seed + 1, precision="fp32").activation_final
            row = [layer, f, f"{ref:.4g}"]
            for name, value in reached.items():
                relative = (value - ref) / abs(ref)
                spread[name].append(relative)
                row.append(f"{value:.4g} ({100 * relative:+.2f}%)")
            rows.append(row)
            print(f"[layer {layer}, filter {f} done]", flush=True)
    summary = [(name, f"{100 * statistics.mean(v):+.2f}%", f"{100 * statistics.mean(map(abs, v)):.2f}%",
                f"{100 * max(map(abs, v)):.2f}%") for name, v in spread.items()]
    return rows, summary


def markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def report(features, seed, layers, filters, precisions) -> str:
    rows, summary = rows_and_summary(features, seed, layers, filters, precisions)
    return (f"### Activation reached vs strict fp32 (seed {seed}, article defaults)\n\n"
            + markdown(["layer", "filter", "fp32", *precisions, "fp32, seed + 1"], rows) + "\n"
            + markdown(["", "mean difference", "mean abs. difference", "max abs. difference"], summary))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--precisions", nargs="+", default=["bf16"])
    parser.add_argument("--layers", type=int, nargs="+", default=[7, 14, 20, 30, 40])
    parser.add_argument("--filters", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    features = build_model(weights.resolve(args.weights).state_dict(), args.device).features
    print(f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, weights {args.weights}\n")
    print(report(features, args.seed, args.layers, args.filters, args.precisions))


if __name__ == "__main__":
    main()
