"""A folder of images as dataset examples, as OpenAI Microscope shows them (the images a filter fires on
most, by the served `activations`); requests in flight together; a cache file of the answers got."""
import hashlib
import io
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

from PIL import Image
from tqdm import tqdm

from scripts.http_client import Stop


def read_images(folder: str) -> tuple[dict, list]:
    """The JPEG and PNG files of `folder` by name (told by content), and the others with the reason."""
    if not os.path.isdir(folder):
        raise Stop(f"--images {folder}: no such folder")
    names = sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)))
    if not names:
        raise Stop(f"--images {folder}: the folder is empty")
    images, skipped = {}, []
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        try:
            kind = Image.open(io.BytesIO(data)).format
        except Exception:
            kind = None
        if kind in ("JPEG", "PNG"):
            images[name] = data
        else:
            skipped.append({"file": name, "reason": f"not a JPEG or PNG image ({kind or 'no image format'})"})
    if not images:
        raise Stop(f"--images {folder}: none of its {len(names)} files is a JPEG or PNG image")
    return images, skipped


class Answers:
    """The answers got, a JSON line each, appended as they come. Each line starts with a newline, so
    that a line cut short when a run stopped spoils no other: the next run reads every whole one."""

    def __init__(self, path: str):
        self.path, self.lock, self.kept = path, threading.Lock(), {}
        with open(path, "a+", errors="replace") as f:
            f.seek(0)
            for line in f:
                try:
                    name, value = json.loads(line)
                    self.kept[name] = value
                except (ValueError, TypeError):
                    continue

    def get(self, key: tuple):
        return self.kept.get(json.dumps(key, sort_keys=True))

    def put(self, key: tuple, value):
        name = json.dumps(key, sort_keys=True)
        with self.lock, open(self.path, "a") as f:
            self.kept[name] = value
            f.write("\n" + json.dumps([name, value]))


def run_tasks(tasks: list, concurrency: int, bar):
    """(function, requests it sends) pairs, `concurrency` at a time; the first Stop cancels the rest."""
    with ThreadPoolExecutor(concurrency) as pool:
        futures = {pool.submit(task): count for task, count in tasks}
        try:
            for future in as_completed(futures):
                future.result()
                bar.update(futures[future])
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def cached_or_task(answers: Answers, key: tuple, fetch, keep, count: int = 1, usable=lambda value: True):
    """keep(a usable cached value) now, and None; else (the task fetching, caching and keeping it, its requests)."""
    value = answers.get(key)
    if value is not None and usable(value):
        keep(value)
        return None

    def task():
        fetched = fetch()
        answers.put(key, fetched)
        keep(fetched)
    return task, count


def activation_tasks(endpoint, version: str, weights, images: dict, layer: int, size: int, answers: Answers,
                     means: dict, refused: dict) -> list:
    """Each image's channel means at `layer` of `version` ("": the default) into means, refusals into refused."""
    def fetch(name, data):
        response = endpoint.post(f"activations/{version}".rstrip("/"), f"activations of {name} (version "
                                 f"{version or 'default'})", True, files={"data": (name, data)},
                                 data={"layer": str(layer), "size": str(size)})
        return response.json()["means"] if response.status_code == 200 else {"refused": response.json()["message"]}

    def keep(name, value):
        if isinstance(value, list):
            means[name] = value
        else:
            refused.setdefault(name, f"refused by version {version or 'default'}: {value['refused']}")
    return [task for name, data in images.items() if (task := cached_or_task(
        answers, ("activations", endpoint.url, version, weights, layer, size, hashlib.sha256(data).hexdigest()),
        lambda n=name, d=data: fetch(n, d), lambda v, n=name: keep(n, v)))]


def top_images(means: dict, filter: int, k: int) -> list[str]:
    """The k images with the highest mean activation of `filter`, highest first (ties by name)."""
    return sorted(means, key=lambda name: (-means[name][filter], name))[:k]


def thumbnails(images: dict, out: str, side: int = 128) -> dict:
    """A small JPEG of each image in out/examples/: name -> its path relative to out."""
    os.makedirs(os.path.join(out, "examples"), exist_ok=True)
    paths = {name: f"examples/{i:04d}.jpg" for i, name in enumerate(sorted(images))}
    for name, path in paths.items():
        picture = Image.open(io.BytesIO(images[name])).convert("RGB")
        picture.thumbnail((side, side))
        picture.save(os.path.join(out, path), quality=85)
    return paths


def examples_of(endpoint, folder: str, layers: list, filters: list, k: int, out: str, concurrency: int, progress):
    """The gallery's {(layer, filter): [(name, thumbnail)] of its top k images}, and the files skipped."""
    images, skipped = read_images(folder)
    os.makedirs(out, exist_ok=True)
    means, refused, answers = {layer: {} for layer in layers}, {}, Answers(os.path.join(out, "answers.jsonl"))
    tasks = [task for layer in layers
             for task in activation_tasks(endpoint, "", None, images, layer, 224, answers, means[layer], refused)]
    with tqdm(total=len(tasks), unit="image", file=progress) as bar:
        run_tasks(tasks, concurrency, bar)
    skipped += [{"file": name, "reason": reason} for name, reason in sorted(refused.items())]
    paths = thumbnails({name: data for name, data in images.items() if name not in refused}, out)
    return {(layer, f): [(name, paths[name]) for name in top_images(means[layer], f, k)]
            for layer in layers for f in filters}, skipped
