"""What changed between two served versions at one convolution, as OUT/index.html and OUT/summary.json:
each filter's weights (`filters`), mean activation on each image (`activations`), the images it fires on
most, and pictures (`visualize` with the FIELD=VALUE pairs) of those that changed most (docs/api.md,
"Comparing two versions"). Answers go to OUT/answers.jsonl as they come: a run that stopped resumes.

    python -m scripts.compare --a 1.0 --b 2.0 --layer 40 --images photos --out compare size=32 opt_steps=6
"""
import argparse
import json
import os
import sys

import numpy as np
from tqdm import tqdm

from scripts.compare_report import write_report
from scripts.examples import Answers, activation_tasks, cached_or_task, read_images, run_tasks, thumbnails, top_images
from scripts.http_client import Endpoint, Stop, fields_of
from serving.client import inference_key


class Side:
    """Version A or B: where it is served, and what its `layers` answer says of the layer."""

    def __init__(self, name: str, endpoint: Endpoint, version: str):
        self.name, self.endpoint, self.version = name, endpoint, version

    def probe(self, layer: int):
        """Stops where the server is not reached, refuses the key, has no such version or conv `layer`."""
        body = self.endpoint.post(f"layers/{self.version}", f"version {self.version}", json={"output": "json"}).json()
        row = {r["name"]: r for r in body["layers"]}.get(f"features.{layer}")
        if row is None or row["type"] != "Conv2d":
            convs = [str(r["index"]) for r in body["layers"] if r["type"] == "Conv2d"]
            raise Stop(f"--layer {layer} is not a convolution; expected one of {', '.join(convs)}")
        text, sha = body["weights"]["description"], body["weights"]["sha256"]  # untrained: the seed is in the sha only
        self.channels, self.id = row["channels"], [self.endpoint.url, self.version, sha]
        self.about = {"url": self.endpoint.url, "model_version": body["model_version"],
                      "weights": text if sha[:12] in text else f"{text} (sha256 {sha[:12]})"}


def kernels(side: Side, layer: int, filter: int | None = None) -> np.ndarray | None:
    """The layer's kernels (of one filter), or None where the layer is too large for one JSON answer."""
    response = side.endpoint.post(f"filters/{side.version}", f"the kernels of layer {layer} (version {side.version})",
                                  filter is None, json={"layer": layer, "output": "json", "filter": filter})
    # A refusal of a layer the probe found: too many weights for one JSON answer.
    return np.asarray(response.json()["kernels"], dtype=np.float64) if response.status_code == 200 else None


def distance(kernel_a: np.ndarray, kernel_b: np.ndarray) -> float | None:
    """||W_a - W_b|| / ||W_a||; null where W_a is zero and W_b is not."""
    change, norm = np.linalg.norm(kernel_a - kernel_b), np.linalg.norm(kernel_a)
    return 0.0 if change == 0 else float(change / norm) if norm > 0 else None


def weight_tasks(a: Side, b: Side, layer: int, answers: Answers, distances: dict) -> list:
    """The layer's kernels in one answer per version; where `filters` refuses that, one filter's at a time."""
    key = ("weights", a.id, b.id, layer)
    whole = answers.get(key)  # false: the layer is asked filter by filter
    if whole is None:
        kernels_a = kernels(a, layer)
        whole = False if kernels_a is None else [distance(x, y) for x, y in zip(kernels_a, kernels(b, layer))]
        answers.put(key, whole)
    if whole:
        distances.update(enumerate(whole))
        return []
    return [task for f in range(a.channels) if (task := cached_or_task(
        answers, key + (f,), lambda f=f: [distance(kernels(a, layer, f), kernels(b, layer, f))],
        lambda value, f=f: distances.__setitem__(f, value[0]), count=2))]


def correlation(x: list, y: list) -> float | None:
    """Pearson's, 1 for equal values, null where either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return 1.0 if np.array_equal(x, y) else float(np.clip(np.corrcoef(x, y)[0, 1], -1, 1))


def picture_tasks(side: Side, layer: int, filters: list, fields: dict, answers: Answers, out: str,
                  pictures: dict) -> list:
    """Each filter's visualize picture, written to OUT/{a,b}/filterNNNN.png once."""
    os.makedirs(os.path.join(out, side.name), exist_ok=True)

    def fetch(f):
        path = f"{side.name}/filter{f:04d}.png"
        with open(os.path.join(out, path + ".part"), "wb") as file:
            file.write(side.endpoint.post(f"visualize/{side.version}", f"visualize filter {f} (version {side.version})",
                                          json={**fields, "layer": layer, "filter": f}).content)
        os.replace(os.path.join(out, path + ".part"), os.path.join(out, path))
        return path
    return [task for f in filters if (task := cached_or_task(
        answers, ("visualize", side.name, side.id, layer, f, fields), lambda f=f: fetch(f),
        lambda path, f=f: pictures.__setitem__((side.name, f), path), usable=lambda path: os.path.exists(
            os.path.join(out, path))))]


def ranked(means: dict, distances: dict, channels: int, top: int) -> tuple[list, list]:
    """The images both versions took, and every filter's figures, most changed first."""
    used = sorted(name for name in means["a"] if name in means["b"])
    on = {side: {name: means[side][name] for name in used} for side in "ab"}
    rows = [{"filter": f, "weight_distance": distances[f],
             "activation_correlation": correlation(*([on[side][n][f] for n in used] for side in "ab")),
             "top_a": top_images(on["a"], f, top), "top_b": top_images(on["b"], f, top)} for f in range(channels)]
    rows.sort(key=lambda r: (r["activation_correlation"] is None, r["activation_correlation"] or 0, r["filter"]))
    return used, rows


def compare(args, fields: dict, key: str | None) -> dict:
    images, skipped = read_images(args.images)  # before any request: an empty folder stops at once
    a, b = Side("a", Endpoint(args.url, key), args.a), Side("b", Endpoint(args.url_b or args.url, key), args.b)
    for side in (a, b):
        side.probe(args.layer)
    os.makedirs(args.out, exist_ok=True)
    answers = Answers(os.path.join(args.out, "answers.jsonl"))
    means, refused, distances, pictures = {"a": {}, "b": {}}, {}, {}, {}
    same = a.id[0::2] == b.id[0::2]  # one server, one weights file: B's answers are A's, asked once
    tasks = ([] if same else weight_tasks(a, b, args.layer, answers, distances)) + [
        task for s in ((a,) if same else (a, b)) for task in activation_tasks(
            s.endpoint, s.version, s.id[2], images, args.layer, args.size, answers, means[s.name], refused)]
    with tqdm(total=sum(n for _, n in tasks) + 2 * min(args.draw, a.channels), unit="request", file=sys.stderr) as bar:
        run_tasks(tasks, args.concurrency, bar)
        if same:
            means["b"], distances = means["a"], dict.fromkeys(range(a.channels), 0.0)
        used, rows = ranked(means, distances, a.channels, args.top)
        if len(used) < 2:
            raise Stop(f"--images {args.images}: a correlation needs 2 images or more; refused: {refused}")
        tasks = [task for s in (a, b) for task in picture_tasks(
            s, args.layer, [r["filter"] for r in rows[:args.draw]], fields, answers, args.out, pictures)]
        bar.total = bar.n + sum(n for _, n in tasks)
        run_tasks(tasks, args.concurrency, bar)
    for r in rows:
        r["picture_a"], r["picture_b"] = pictures.get(("a", r["filter"])), pictures.get(("b", r["filter"]))
    skipped += [{"file": name, "reason": reason} for name, reason in refused.items()]
    summary = {"layer": args.layer, "a": a.about, "b": b.about, "images": used,
               "skipped": sorted(skipped, key=lambda s: s["file"]), "filters": rows}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    unchanged = all(d == 0 for d in distances.values()) and all(means["a"][n] == means["b"][n] for n in used)
    write_report(summary, args.out, thumbnails({n: images[n] for n in used}, args.out), fields, unchanged)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="both versions' server (A's with --url-b)")
    parser.add_argument("--url-b", help="version B's server, where it is another")
    parser.add_argument("--a", required=True, help="version A, e.g. 1.0")
    parser.add_argument("--b", required=True, help="version B, e.g. 2.0")
    parser.add_argument("--layer", type=int, default=40, help="a convolution's index, as `filters` takes")
    parser.add_argument("--images", required=True, help="a folder of JPEG and PNG images")
    parser.add_argument("--out", default="compare")
    parser.add_argument("--top", type=int, default=6, help="dataset examples per filter and version")
    parser.add_argument("--draw", type=int, default=16, help="pictures of this many most changed filters")
    parser.add_argument("--size", type=int, default=224, help="`activations`' size: the images' side at the network")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--key", help="the inference key (default: key_file.json's in the current folder)")
    parser.add_argument("fields", nargs="*", metavar="FIELD=VALUE", help="visualize fields of the pictures")
    args = parser.parse_args()
    if not (args.a and args.b and args.images) or args.concurrency < 1 or args.top < 1 or args.draw < 0:
        parser.error("--a, --b and --images name something; --concurrency and --top are 1 or more, --draw 0 or more")
    key = args.key or (inference_key("key_file.json") if os.path.exists("key_file.json") else None)
    try:
        summary = compare(args, fields_of(args.fields), key)
    except Stop as error:
        sys.exit(f"error: {error}")
    print(f"{len(summary['images'])} images, {len(summary['skipped'])} skipped: {os.path.abspath(args.out)}/index.html")


if __name__ == "__main__":
    main()
