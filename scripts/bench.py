"""Time `visualize` against the seed article's algorithm as written, on the same weights, in one run.

    python scripts/bench.py [--layers 7 40] [--filter 0] [--weights random] [--served URL --key KEY]

The seed runs the whole `features` every step, one filter at a time; ours runs only up to the
target layer. Both use the article's defaults (56 px, 12 scales x 20 Adam steps, x1.2, blur 5).
With --served, also times the same request through a running TorchServe.
Prints a Markdown table: seconds, the ratio ours/seed, and the activation reached vs the noise start.
"""
import argparse
import os
import platform
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from featureviz.image import box_blur, denormalize, normalize, start_noise, upscale  # noqa: E402
from featureviz.network import build_model  # noqa: E402
from featureviz.render import Schedule, visualize  # noqa: E402
from featureviz.weights import imagenet_file, load_state_dict, random_state_dict  # noqa: E402


def seed_visualize(features, layer, filter, schedule=Schedule(), seed=0):
    """The article's FilterVisualizer.visualize, as written but for its hook, which stores the
    output itself (the article's torch.tensor copy lets no gradient reach the pixels today)."""
    stored = {}
    hook = features[layer].register_forward_hook(lambda m, i, o: stored.__setitem__("features", o))
    try:
        img = start_noise(schedule.size, seed)
        side = schedule.size
        for _ in range(schedule.upscaling_steps):
            img_var = normalize(img)[None].requires_grad_(True)
            optimizer = torch.optim.Adam([img_var], lr=schedule.lr, weight_decay=1e-6)
            for _ in range(schedule.opt_steps):
                optimizer.zero_grad()
                features(img_var)  # the whole network, every step
                loss = -stored["features"][0, filter].mean()
                loss.backward()
                optimizer.step()
            img = denormalize(img_var.detach()[0])
            output = img
            side = int(schedule.upscaling_factor * side)
            img = upscale(img, side)  # the article upscales after the last scale too
            if schedule.blur is not None:
                img = box_blur(img, schedule.blur)
        return output.clamp(0, 1)
    finally:
        hook.remove()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def served(url, key, layer, filter):
    import requests
    response = requests.post(f"{url}/predictions/visualize", json={"layer": layer, "filter": filter},
                             headers={"Authorization": f"Bearer {key}"}, timeout=3600)
    response.raise_for_status()
    return response.content


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[7, 40])
    parser.add_argument("--filter", type=int, default=0)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--served", help="inference address of a running TorchServe, e.g. http://127.0.0.1:8080")
    parser.add_argument("--key", help="its inference key (key_file.json)")
    args = parser.parse_args()

    if args.weights.startswith("random"):
        state = random_state_dict(int(args.weights.partition(":")[2] or 0))
    else:
        state = load_state_dict(imagenet_file() if args.weights == "imagenet" else args.weights)
    features = build_model(state).features
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, weights {args.weights}\n")
    header = "| layer | filter | seed article (s) | ours, engine (s) | ours / seed |"
    header += " served (s) | served / seed |" if args.served else ""
    header += " activation: noise start -> ours |"
    print(header)
    print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
    for layer in args.layers:
        seed_s, _ = timed(lambda: seed_visualize(features, layer, args.filter))
        ours_s, result = timed(lambda: visualize(features, layer, args.filter))
        row = f"| {layer} | {args.filter} | {seed_s:.1f} | {ours_s:.1f} | {ours_s / seed_s:.2f} |"
        if args.served:
            served_s, _ = timed(lambda: served(args.served, args.key, layer, args.filter))
            row += f" {served_s:.1f} | {served_s / seed_s:.2f} |"
        row += f" {result.activation_start:.4g} -> {result.activation_final:.4g} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
