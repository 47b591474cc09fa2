"""The gallery client run as a user runs it (`python -m scripts.gallery`), for its tests."""
import json
import subprocess
import sys

from tests.support import ROOT


def run_gallery(url: str, key_file, out, layers: list[int], filters: str, fields: dict, *options,
                timeout: float = 600) -> dict:
    """Its records, by (layer, filter), once it exited 0."""
    field_options = [arg for name, value in fields.items() for arg in ("--field", f"{name}={value}")]
    done = subprocess.run([sys.executable, "-m", "scripts.gallery", "--url", url, "--key-file", str(key_file),
                           "--layers", *map(str, layers), "--filters", filters, "--out", str(out),
                           *field_options, *options], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return {(layer, int(path.stem.split("_")[1])): json.loads(path.read_text())
            for layer in layers for path in sorted((out / f"layer{layer}").glob("filter_*.json"))}
