"""Today's answers, pinned: the bytes (sha256) of a few tiny visualize answers as this code gave
them before fixed group shapes and whole-layer requests came, so that a change to how images are
grouped cannot change an existing request's answer on the CPU unnoticed.

oneDNN's kernels, and so an image's last bits, depend on the processor's instruction set: the
pins hold for the one they were recorded on (PyTorch's CPU capability), in strict fp32. Record
them again on another from the failing assertion, which shows the hashes found there."""
import base64
import hashlib
import json

import pytest
import torch
from ts.context import RequestProcessor

import featureviz_handler
from tests.support import TINY
from tests.support.handler import HTTP_HEADERS, make_context, make_handler

REQUESTS = {
    "single": {"layer": 7, "filter": 3, "seed": 1, **TINY},
    "filters": {"layer": 7, "filters": [3, 5, 9], "seed": 1, **TINY},
    "stream": {"layer": 7, "filter": 4, "seed": 2, "stream": True, **TINY},
    "too_many_filters": {"layer": 7, "filters": list(range(65))},
    "too_much_work": {"layer": 7, "filters": list(range(9))},
}
CAPABILITY = "AVX2"  # torch.backends.cpu.get_cpu_capability() where the pins were recorded
PINNED = {
    "single": "669ba9758098d59814f883ea53152f0242f2a0a9b6b84b0a750d336dd095d35e",
    "filters": "5a11276c5a26640dc579b42c6d4e94739150f60fe28c9290633e0cb16f5670e2",
    "stream": "17cf245fb8622825c95b31eb44c6d8d60754290ee6063838f00b28373b5a3133",
    "too_many_filters": "8ba8d6d2a767ee29ad8077a2f4628657dd5a6e160a6da5ac44ebec0a8c9ad75b",
    "too_much_work": "3801f344aad7fea3b1ae4692fd0ee228076eab8d6ba7b32c5585e6b04600c164",
}


def answers(model_dir, monkeypatch, tmp_path) -> dict:
    """name -> sha256 of the answer's bytes (a stream's: its `done` PNG and its events, times left out)."""
    monkeypatch.setenv("FEATUREVIZ_PRECISION", "fp32")
    monkeypatch.setenv("FEATUREVIZ_CACHE_DIR", str(tmp_path))
    handler = make_handler("visualize", model_dir)
    events = []
    monkeypatch.setattr(featureviz_handler, "send_intermediate_predict_response",
                        lambda ret, ids, message, code, context: events.extend(
                            {k: v for k, v in json.loads(data).items() if k != "elapsed_s"} for data in ret.values()))
    out = {}
    for name, fields in REQUESTS.items():
        context = make_context("visualize", model_dir)
        context.request_processor = [RequestProcessor(dict(HTTP_HEADERS))]
        context.request_ids = {0: "request-0"}
        body = handler.handle([{"body": fields}], context)[0]
        if fields.get("stream"):
            body = base64.b64decode(json.loads(body)["png"]) + json.dumps(events).encode()
        out[name] = hashlib.sha256(body).hexdigest()
    return out


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() != CAPABILITY,
                    reason=f"the pins are {CAPABILITY}'s (see the docstring)")
@pytest.mark.slow
def test_existing_requests_answer_todays_bytes(model_dir, monkeypatch, tmp_path):
    found = answers(model_dir, monkeypatch, tmp_path)
    assert found == PINNED, json.dumps(found, indent=4)

