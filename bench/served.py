"""The CPU section's served measurements: one request to a running TorchServe, and N requests at
once (which TorchServe hands to the handler as one batch) against N one after another."""
import concurrent.futures
import io

from PIL import Image

from .table import Report
from .timing import timed


def served(url, key, layer, filter, seed) -> bytes:
    """The PNG of one visualize request."""
    from scripts.http_client import Endpoint
    return Endpoint(url, key).post("visualize", json={"layer": layer, "filter": filter, "seed": seed}).content


def png_activations(png):
    """(activation at the noise start, at the end, the precision) from the PNG's text chunks."""
    text = Image.open(io.BytesIO(png)).text
    return float(text["activation_start"]), float(text["activation_final"]), text["precision"]


def served_batch_table(report: Report, url, key, layers, n, seed):
    report.say(f"Served at {url}, seeds {seed} (at once) and {seed + 1} (one after another)\n")
    table = report.table(["layer", "requests", "at once (s)", "one after another (s)", "at once / one after another"])
    for layer in layers:
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            at_once_s, _ = timed(lambda: list(pool.map(lambda f: served(url, key, layer, f, seed), range(n))))
        one_s, _ = timed(lambda: [served(url, key, layer, f, seed + 1) for f in range(n)])
        table.row(layer, n, f"{at_once_s:.1f}", f"{one_s:.1f}", f"{at_once_s / one_s:.2f}")
