"""A streamed answer (`visualize` with stream: true): one JSON object a line (NDJSON), sent as the
work goes: a `scale` event per scale, then `done` with the picture, whose bytes are those of the
answer without streaming; or `error`, when the request fails after its stream began."""
import base64
import io
import json

import torch
import torch.nn.functional as F
from PIL import Image

from ..pictures import to_png
from .answers import Answer
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
