"""Does an image's gradient depend on the batch it is computed in? One Adam step's input gradient.

For each side the optimization visits, the gradient of one image's objective (its filter's mean
activation, through `network.channel_trunk` once for the batch and its own `channel_tail`) is
computed in a batch of N beside other images, beside different other images, in the batch's
last slot, and alone; the table gives the largest absolute differences. Any non-zero value is
amplified by Adam into a different image (docs/benchmarks.md).

    .venv/bin/python scripts/batch_invariance.py --layer 7 --batch 4 [--device cuda --precision tf32]
"""
import argparse
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from featureviz import precision as arithmetic  # noqa: E402
from featureviz.network import build_model, channel_tail, channel_trunk  # noqa: E402
from featureviz.render import Schedule  # noqa: E402
from featureviz.weights import random_state_dict  # noqa: E402


def input_gradient(features, layer, images, filters, precision):
    device = images.device
    trunk = torch.nn.Sequential(*channel_trunk(features, layer))
    tails = [torch.nn.Sequential(*channel_tail(features, layer, f)) for f in filters]
    x = images.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with arithmetic.kernels(precision, device):
        with arithmetic.autocast(precision, device):
            below = trunk(x)
            loss = sum(tail(below[i:i + 1]).float().mean() for i, tail in enumerate(tails))
        loss.backward()
    return x.grad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=int, default=7)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=arithmetic.PRECISIONS)
    args = parser.parse_args()
    device = torch.device(args.device)
    features = build_model(random_state_dict(0), device).features
    n = args.batch
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"{args.device}: {where}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.precision}, layer {args.layer}, batch of {n}\n")
    print("| side | other images changed | moved to the last slot | alone (batch of 1) |")
    print("|---|---|---|---|")
    for side in Schedule().sides():
        g = torch.Generator().manual_seed(side)
        one, others, other_others = (torch.randn(k, 3, side, side, generator=g).to(device)
                                     for k in (1, n - 1, n - 1))

        def gradient(images, filters, slot):
            return input_gradient(features, args.layer, images, filters, args.precision)[slot]
        first = gradient(torch.cat([one, others]), range(n), 0)
        changed = gradient(torch.cat([one, other_others]), [0, *range(n, 2 * n - 1)], 0)
        last = gradient(torch.cat([others, one]), [*range(1, n), 0], -1)
        alone = gradient(one, [0], 0)
        print(f"| {side} | " + " | ".join(f"{(first - other).abs().max().item():.2g}"
                                          for other in (changed, last, alone)) + " |", flush=True)


if __name__ == "__main__":
    main()
