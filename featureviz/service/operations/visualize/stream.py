"""A streamed answer (`visualize` with stream: true): one JSON object a line (NDJSON), sent as the
work goes: a `scale` event per scale, then `done` with the picture, whose bytes are those of the
answer without streaming; or `error`, when the request fails after its stream began."""
import base64
import io
import json
import time

import torch
import torch.nn.functional as F
from PIL import Image

from ....pictures import to_png
from ...answers import Answer
from ..worker import Worker
from .request import VisualizeRequest
from .zipped import CONTENT_TYPE as ZIP

CONTENT_TYPE = "application/x-ndjson"
PREVIEW_SIDE = 64


def line(event: dict) -> bytes:
    return json.dumps(event).encode() + b"\n"


@torch.no_grad()
def preview(image: torch.Tensor) -> str:
    """An image of a scale, (3, H, W) in [0, 1], as a base64 PNG at most PREVIEW_SIDE px wide."""
    side = min(PREVIEW_SIDE, image.shape[-1])
    small = F.interpolate(image[None].float().clamp(0, 1), size=(side, side), mode="area")[0]
    return base64.b64encode(to_png(small.cpu(), {})).decode()


def last_line(a: Answer, began: bool) -> Answer:
    """A streamed request's answer as its stream's last line: `done` with the PNG (base64) and
    the text it carries (a zip: the zip, base64), or `error` once events went out (before that, the
    refusal itself)."""
    if a.status == 200 and a.content_type == ZIP:
        done = {"event": "done", "cache": a.headers.get("X-Cache"), "zip": base64.b64encode(a.body).decode()}
        return Answer(200, CONTENT_TYPE, line(done), a.headers)
    if a.status == 200:
        text = Image.open(io.BytesIO(a.body)).text
        done = {"event": "done", **text, "cache": a.headers.get("X-Cache"), "png": base64.b64encode(a.body).decode()}
        return Answer(200, CONTENT_TYPE, line(done), a.headers)
    if not began:
        return a
    return Answer(200, CONTENT_TYPE, line({"event": "error", **json.loads(a.body)}), a.headers, a.refusal)


class Streams:
    """The streamed requests of the running batch: their index in it, which streams began, and
    how to send a part (`emit`, the model server's)."""

    def __init__(self, requests: list = (), emit=None):
        self.index = {id(r): i for i, r in enumerate(requests) if getattr(r, "stream", False)}
        self.count = len(self.index)
        self.began = set()
        self.emit = emit
        self.started = time.monotonic()

    def event(self, request, event: dict, headers: dict):
        """A progress event of a streamed request, sent at once (nothing where none is streamed)."""
        index = self.index.get(id(request))
        if index is None or self.emit is None:
            return
        event["elapsed_s"] = round(time.monotonic() - self.started, 3)
        if self.emit(index, CONTENT_TYPE, headers, line(event)) is not False:
            self.began.add(index)

    def last_line(self, index: int, a: Answer) -> Answer:
        return last_line(a, began=index in self.began)


def on_scale_events(worker: Worker, group: list[VisualizeRequest], listeners: dict, group_index: int,
                    groups_of: dict):
    """visualize_many's on_scale for the images of `group`, group `group_index` of the run: each
    streamed request that waits for some of them gets a `scale` event a scale (with `filters`:
    those images' filters and activations, and which of the request's groups this is, of how
    many). None when nobody waits."""
    waiting = {}  # id of a streamed request -> (request, positions in group of its images)
    for position, single in enumerate(group):
        for request in listeners.get(single, []):
            waiting.setdefault(id(request), (request, []))[1].append(position)
    if not waiting:
        return None

    def on_scale(scale, side, activations, images):
        for request, positions in waiting.values():
            event = {"event": "scale", "scale": scale + 1, "scales": request.schedule.upscaling_steps, "side": side}
            if request.filters is None:
                event["activation"] = activations[positions[0]]
            else:
                event["filters"] = [group[p].filter for p in positions]
                event["activations"] = [activations[p] for p in positions]
                mine = groups_of[id(request)]
                event["group"], event["groups"] = mine.index(group_index) + 1, len(mine)
            if request.preview and request.filters is None:
                event["preview"] = preview(images[positions[0]])
            elif request.preview:
                event["previews"] = [preview(images[p]) for p in positions]
            worker.event(request, event)
    return on_scale
