"""Ask a running server (make serve) for each explain endpoint's PNG of a sample image: the
README's pictures. The PNG text says which weights made them.

    python -m scripts.readme_pictures docs/images/chelsea.jpg docs/images
"""
import argparse
import os

from scripts import server

REQUESTS = {  # file name -> (operation, fields); the image operations also get the sample as `data`
    "deconv": ("deconv", {}),
    "saliency-guided": ("saliency", {"method": "guided"}),
    "gradcam": ("gradcam", {}),
    "occlusion": ("occlusion", {}),
    "layers": ("layers", {}),
    "filters": ("filters", {}),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("out_dir")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    args = parser.parse_args()
    import requests
    key = server.keys(server.ROOT)["inference"]
    with open(args.image, "rb") as f:
        sample = f.read()
    for name, (operation, fields) in REQUESTS.items():
        files = {k: (None, v) for k, v in fields.items()}
        if operation not in ("layers", "filters"):
            files["data"] = (os.path.basename(args.image), sample, "image/jpeg")
        response = requests.post(f"{args.url}/predictions/{operation}", files=files or {"output": (None, "png")},
                                 headers={"Authorization": f"Bearer {key}"}, timeout=600)
        response.raise_for_status()
        path = os.path.join(args.out_dir, f"{name}.png")
        with open(path, "wb") as f:
            f.write(response.content)
        print(path, response.elapsed.total_seconds(), "s")


if __name__ == "__main__":
    main()
