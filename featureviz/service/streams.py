"""Streamed answers (a request with stream: true): one JSON object a line (NDJSON), sent as the
work goes: the operation's progress events, then `done` with the answer, whose bytes are those of
the answer without streaming; or `error`, when the request fails after its stream began."""
import base64
import io
import json
import time

from PIL import Image

from .answers import PICTURES, Answer

CONTENT_TYPE = "application/x-ndjson"


def line(event: dict) -> bytes:
    return json.dumps(event).encode() + b"\n"


def last_line(a: Answer, began: bool) -> Answer:
    """A streamed request's answer as its stream's last line: `done` with the PNG (base64) and
    the text it carries (a zip: the zip, base64), or `error` once events went out (before that, the
    refusal itself)."""
    if a.status == 200 and a.content_type == PICTURES["zip"]:
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

    def __init__(self, requests: list = (), emit=None, headers: dict | None = None):
        self.index = {id(r): i for i, r in enumerate(requests) if getattr(r, "stream", False)}
        self.count = len(self.index)
        self.began = set()
        self.emit = emit
        self.headers = headers or {}
        self.started = time.monotonic()

    def event(self, request, event: dict):
        """A progress event of a streamed request, sent at once (nothing where none is streamed)."""
        index = self.index.get(id(request))
        if index is None or self.emit is None:
            return
        event["elapsed_s"] = round(time.monotonic() - self.started, 3)
        if self.emit(index, CONTENT_TYPE, self.headers, line(event)) is not False:
            self.began.add(index)

    def last_line(self, index: int, a: Answer) -> Answer:
        return last_line(a, began=index in self.began)
