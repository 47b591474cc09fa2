"""Ask a running server (make serve) for each explain endpoint's PNG of a sample image: the
README's pictures. The PNG text says which weights made them.

    python -m scripts.readme_pictures docs/images/chelsea.jpg docs/images
    python -m scripts.readme_pictures --visualize docs/images/trained     # the article's layers, 4 filters each
"""
import argparse
import os

from serving import torchserve
from scripts.http_client import Endpoint

REQUESTS = {  # file name -> (operation, fields); the image operations also get the sample as `data`
    "deconv": ("deconv", {}),
    "saliency-guided": ("saliency", {"method": "guided"}),
    "gradcam": ("gradcam", {}),
    "occlusion": ("occlusion", {}),
    "layers": ("layers", {}),
    "filters": ("filters", {}),
}


# The seed article's layers, and the first four filters it shows of each.
ARTICLE_FILTERS = {7: [12, 16, 86, 110], 14: [1, 6, 31, 32], 20: [3, 34, 39, 55], 30: [54, 62, 67, 92],
                   40: [4, 9, 34, 35]}


def visualize_grids(url: str, key: str, out_dir: str):
    """One `filters` grid per article layer, default schedule: layer{L}.png."""
    os.makedirs(out_dir, exist_ok=True)
    for layer, filters in ARTICLE_FILTERS.items():
        response = Endpoint(url, key).post("visualize", json={"layer": layer, "filters": filters})
        path = os.path.join(out_dir, f"layer{layer}.png")
        with open(path, "wb") as f:
            f.write(response.content)
        print(path, response.elapsed.total_seconds(), "s", response.headers.get("X-Weights"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?")
    parser.add_argument("out_dir")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--visualize", action="store_true", help="the article's layers instead of the explain pictures")
    args = parser.parse_args()
    if args.image is None and not args.visualize:
        parser.error("give the image for the explain pictures (or --visualize)")
    key = torchserve.keys(torchserve.ROOT)["inference"]
    if args.visualize:
        return visualize_grids(args.url, key, args.out_dir)
    with open(args.image, "rb") as f:
        sample = f.read()
    for name, (operation, fields) in REQUESTS.items():
        files = {k: (None, v) for k, v in fields.items()}
        if operation not in ("layers", "filters"):
            files["data"] = (os.path.basename(args.image), sample, "image/jpeg")
        response = Endpoint(args.url, key, timeout=600).post(operation, files=files or {"output": (None, "png")})
        path = os.path.join(args.out_dir, f"{name}.png")
        with open(path, "wb") as f:
            f.write(response.content)
        print(path, response.elapsed.total_seconds(), "s")


if __name__ == "__main__":
    main()
