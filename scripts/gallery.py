"""A static HTML gallery of a served endpoint's feature visualizations: a grid per layer.

    python -m scripts.gallery --layers 40 --filters 0-15 --out gallery
    python -m scripts.gallery --url http://127.0.0.1:8090 --key-file .api_key --layers 7 14 40 --filters 0-63 \\
        --field opt_steps=10 --out gallery
    python -m scripts.gallery --layers 30 --filters 0-15 --field param=fft --out gallery-fft   # lucent's drawing

For each layer it asks `visualize` for all the pictures it needs in one request (`filters` as a
range or list, `output: zip`), or, where the server's compute limit refuses that, for each filter
alone (the server's result cache answers a request it has made before); and `activations` for the picture's profile at that layer (how much
each channel of the layer responds to it), and keeps both beside the page: a run that stopped
resumes where it was. Each tile shows the filter's picture, its number and the activation reached;
a click opens the full image, the request that made it and its profile; with --images, the images
of that folder the filter fires on most (its dataset examples). Open gallery/index.html.
"""
import argparse
import html
import io
import json
import os
import sys
import zipfile

from PIL import Image
from tqdm import tqdm

from scripts import examples
from scripts.http_client import Endpoint, Stop, fields_of
from serving import ROOT
from serving.client import inference_key

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; background: #111; color: #eee; }
a { color: #9cf; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.tile { display: block; background: #222; padding: 4px; text-decoration: none; color: #eee; }
.tile img { width: 100%; display: block; image-rendering: auto; }
.tile span { display: flex; justify-content: space-between; font-size: 0.8rem; padding: 2px; }
img.broken { outline: 3px solid #f44; }
pre { background: #222; padding: 0.8rem; white-space: pre-wrap; overflow-wrap: anywhere; }
.detail { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
.detail > div { flex: 1 1 24rem; min-width: 0; }
.detail > img { max-width: 100%; }
.examples img { width: 96px; height: 96px; object-fit: cover; } .tile .examples img { width: 22px; height: 22px; }
"""
# Marks a picture that did not load, and says on the page how many did.
CHECK_IMAGES = """
window.addEventListener("load", () => {
  const images = [...document.images];
  const loaded = images.filter(img => img.complete && img.naturalWidth > 0);
  images.filter(img => !loaded.includes(img)).forEach(img => img.classList.add("broken"));
  document.documentElement.dataset.images = images.length;
  document.documentElement.dataset.imagesLoaded = loaded.length;
  document.getElementById("status").textContent = `${loaded.length} of ${images.length} pictures loaded`;
});
"""


def filter_range(text: str) -> list[int]:
    """"0-15" or "3,5,9-11" -> the filters."""
    out = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out += list(range(int(low), int(high or low) + 1))
    return out


def tile_name(layer: int, filter: int) -> str:
    return os.path.join(f"layer{layer}", f"filter_{filter:04d}")


def requests_of(layer: int, filter: int, extra: dict) -> list[dict]:
    """The requests that answer this picture: alone, and (where the server optimizes a layer's
    images in groups) as the one filter of a zip."""
    return [{**extra, "layer": layer, "filter": filter},
            {**extra, "layer": layer, "filters": [filter], "output": "zip"}]


def kept(out: str, layer: int, filter: int, extra: dict) -> dict | None:
    """A record made before, with its picture, for these fields."""
    name = tile_name(layer, filter)
    record_path, png_path = os.path.join(out, name + ".json"), os.path.join(out, name + ".png")
    if os.path.exists(record_path) and os.path.exists(png_path):
        with open(record_path) as f:
            record = json.load(f)
        if record["request"] in requests_of(layer, filter, extra):
            return record
    return None


def filters_field(filters: list[int]):
    """A range "a-b" where the filters are one, else the list."""
    return f"{filters[0]}-{filters[-1]}" if filters == list(range(filters[0], filters[-1] + 1)) else filters


def layer_pictures(endpoint: Endpoint, layer: int, filters: list[int], extra: dict) -> tuple[dict, str] | None:
    """All the pictures of `filters` in one request (filter -> PNG, and X-Cache), or None where
    the server refuses so many at once (its compute limit: a CPU's takes few)."""
    response = endpoint.post("visualize", f"layer {layer}'s pictures", True,
                             json={**extra, "layer": layer, "filters": filters_field(filters), "output": "zip"})
    if response.status_code != 200:
        if response.json()["field"] == "filters":
            return None
        raise Stop(f"visualize: {response.json()['message']}")
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        pngs = [archive.read(name) for name in archive.namelist()]
    return dict(zip(filters, pngs)), response.headers.get("X-Cache")


def make_tile(endpoint: Endpoint, out: str, layer: int, filter: int, extra: dict, made=None) -> dict:
    """The picture and its record (request, activation, profile), made once: a record whose request
    is this one is kept. `made`: the picture and its X-Cache, where a layer request brought it."""
    name = tile_name(layer, filter)
    record_path, png_path = os.path.join(out, name + ".json"), os.path.join(out, name + ".png")
    record = kept(out, layer, filter, extra)
    if record is not None:
        return record
    if made is None:
        request = requests_of(layer, filter, extra)[0]
        answer = endpoint.post("visualize", json=request)
        png, cache = answer.content, answer.headers.get("X-Cache")
    else:
        png, cache = made
    picture = Image.open(io.BytesIO(png))
    text, side = picture.text, picture.size[0]
    if made is not None:  # optimized in a group, it is not the single request's image
        request = requests_of(layer, filter, extra)[1 if "group" in text else 0]
    profile = endpoint.post("activations", files={"data": ("picture.png", png, "image/png")},
                            data={"layer": str(layer), "size": str(side)}).json()
    record = {"url": endpoint.url, "request": request, "activation": float(text["activation_final"]),
              "activation_start": float(text["activation_start"]), "side": side, "text": text,
              "cache": cache, "profile": profile["means"], "top": profile["top"]}
    os.makedirs(os.path.dirname(png_path), exist_ok=True)
    with open(png_path + ".part", "wb") as f:
        f.write(png)
    os.replace(png_path + ".part", png_path)
    with open(record_path + ".part", "w") as f:
        json.dump(record, f)
    os.replace(record_path + ".part", record_path)  # last: a record means its picture is there
    return record


def profile_svg(means: list[float], highlight: int, width: int = 640, height: int = 160) -> str:
    """The layer's channel means as bars, the visualized filter's in orange."""
    low, high = min(0.0, min(means)), max(1e-12, max(means))
    step = width / len(means)
    zero = height * high / (high - low)
    bars = []
    for i, value in enumerate(means):
        top = zero - value / (high - low) * height
        y, h = (top, zero - top) if value >= 0 else (zero, top - zero)
        colour = "#f90" if i == highlight else "#69c"
        bars.append(f'<rect x="{i * step:.2f}" y="{y:.2f}" width="{max(step, 1):.2f}" height="{max(h, 0.5):.2f}" '
                    f'fill="{colour}"><title>channel {i}: {value:.4g}</title></rect>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" style="background:#222">{"".join(bars)}</svg>')


def page(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{CHECK_IMAGES}</script></head><body>{body}"
            f"<p id=\"status\">pictures loading</p></body></html>\n")


def examples_html(tops: list | None, prefix: str = "") -> str:
    """A filter's dataset examples: (file name, thumbnail) pairs as pictures titled by the name."""
    return "" if tops is None else '<span class="examples">' + "".join(
        f'<img src="{prefix}{path}" alt="{html.escape(n)}" title="{html.escape(n)}">' for n, path in tops) + "</span>"


def detail_page(record: dict, tops: list | None = None) -> str:
    request, layer, filter = record["request"], record["request"]["layer"], record["request"]["filter"]
    means = record["profile"]
    rank = sorted(range(len(means)), key=lambda i: -means[i]).index(filter) + 1
    highest = ", ".join(f"{t['channel']} ({t['mean']:.4g})" for t in record["top"])
    curl = (f"curl -X POST {record['url']}/predictions/visualize -H 'Authorization: Bearer $KEY' "
            f"-H 'Content-Type: application/json' -d '{json.dumps(request)}' -o filter.png")
    body = (f'<p><a href="../index.html#layer{layer}">back to the gallery</a></p>'
            f"<h1>Layer {layer}, filter {filter}</h1><div class=\"detail\">"
            f'<img src="filter_{filter:04d}.png" alt="layer {layer} filter {filter}" width="{record["side"]}">'
            f"<div><p>Activation reached: <b>{record['activation']:.4g}</b> "
            f"(from {record['activation_start']:.4g} on the noise it started from)</p>"
            f"<p>Weights: {html.escape(record['text'].get('weights', '?'))}<br>"
            f"Precision: {html.escape(record['text'].get('precision', '?'))}, model version "
            f"{html.escape(record['text'].get('model_version', '?'))}</p>"
            f"<h2>The request</h2><pre>{html.escape(json.dumps(request, indent=2))}</pre>"
            f"<pre>{html.escape(curl)}</pre></div></div>"
            f"<h2>Its activations profile at layer {layer}</h2>"
            f"<p>The mean of each of the layer's {len(means)} channels on this picture; filter {filter} in orange, "
            f"{means[filter]:.4g}, ranked {rank} of {len(means)}. Highest: {highest}.</p>"
            f"{profile_svg(means, filter)}"
            + ("" if tops is None else f"<h2>The images it fires on most</h2><p>{examples_html(tops, '../')}</p>"))
    return page(f"layer {layer} filter {filter}", body)


def index_page(records: dict, tops: dict, skipped: list) -> str:
    sections = []
    any_record = next(iter(records.values()))
    for layer in sorted({layer for layer, _ in records}):
        tiles = []
        for (l, filter), record in sorted(records.items()):
            if l != layer:
                continue
            name = tile_name(layer, filter)
            tiles.append(f'<a class="tile" href="{name}.html"><img src="{name}.png" alt="layer {layer} filter {filter}" '
                         f'width="150" height="150"><span><b>#{filter}</b><span>{record["activation"]:.3g}</span>'
                         f"</span>{examples_html(tops.get((l, filter)))}</a>")
        sections.append(f'<section id="layer{layer}"><h2>Layer {layer}</h2><div class="grid">{"".join(tiles)}</div>'
                        "</section>")
    weights = html.escape(any_record["text"].get("weights", "?"))
    urls = ", ".join(sorted({html.escape(r["url"]) for r in records.values()}))
    body = (f"<h1>Feature visualization: what each filter responds to most</h1>"
            f"<p>{len(records)} pictures from {urls}, weights: {weights}. "
            "Under each picture: the filter and the mean activation its picture reaches"
            + (", and the images it fires on most" if tops else "") + ".</p>"
            + "".join(f"<p>skipped {html.escape(s['file'])}: {html.escape(s['reason'])}</p>" for s in skipped)
            + "".join(sections))
    return page("featureviz gallery", body)


def build(endpoint: Endpoint, out: str, layers: list[int], filters: list[int], extra: dict, parallel: int = 4,
          progress=sys.stderr, images: str | None = None, top: int = 6) -> dict:
    """Every (layer, filter) tile, then the pages; returns the records by (layer, filter). The
    pictures of a layer come in one request where the server allows it."""
    tops, skipped = examples.examples_of(endpoint, images, layers, filters, top, out, parallel, progress) \
        if images else ({}, [])  # first: a folder with no image stops the run before any picture
    jobs = [(layer, f) for layer in layers for f in filters]
    made = {}  # (layer, filter) -> (PNG, X-Cache) from a layer request
    for layer in layers:
        missing = [f for f in filters if kept(out, layer, f, extra) is None]
        if len(missing) > 1:
            print(f"layer {layer}: {len(missing)} pictures in one request", file=progress)
            answered = layer_pictures(endpoint, layer, missing, extra)
            if answered is None:
                print(f"layer {layer}: the server takes fewer at once; one request per picture", file=progress)
            else:
                pngs, cache = answered
                made.update({(layer, f): (png, cache) for f, png in pngs.items()})
    records = {}
    with tqdm(total=len(jobs), unit="picture", file=progress) as bar:
        examples.run_tasks([(lambda j=j: records.__setitem__(j, make_tile(endpoint, out, *j, extra, made.get(j))), 1)
                            for j in jobs], parallel, bar)
    for (layer, f), record in records.items():
        with open(os.path.join(out, tile_name(layer, f) + ".html"), "w") as fh:
            fh.write(detail_page(record, tops.get((layer, f))))
    with open(os.path.join(out, "index.html"), "w") as fh:
        fh.write(index_page(records, tops, skipped))
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--key-file", default=os.path.join(ROOT, "key_file.json"),
                        help="TorchServe's key_file.json or a plain key file; none where the server wants no key")
    parser.add_argument("--layers", type=int, nargs="+", default=[40])
    parser.add_argument("--filters", type=filter_range, default=filter_range("0-15"), help="e.g. 0-15 or 3,5,9-11")
    parser.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                        help="another visualize field for every picture (seed=3, opt_steps=10, ...)")
    parser.add_argument("--parallel", type=int, default=4, help="requests in flight (the server batches them)")
    parser.add_argument("--out", default="gallery")
    parser.add_argument("--images", help="a folder of JPEG and PNG images: each filter's dataset examples")
    parser.add_argument("--top", type=int, default=6, help="dataset examples per filter")
    args = parser.parse_args()
    key = inference_key(args.key_file) if os.path.exists(args.key_file) else None
    try:
        build(Endpoint(args.url, key), args.out, args.layers, args.filters, fields_of(args.field), args.parallel,
              images=args.images, top=args.top)
    except Stop as error:
        sys.exit(f"error: {error}")
    print(os.path.abspath(os.path.join(args.out, "index.html")))


if __name__ == "__main__":
    main()
