"""An image whose resized size would pass the limit, sent to the suite's TorchServe: a fast 400
naming `data`, and the worker lives on."""
import time

import pytest
import requests

from tests.support.images import png
from featureviz.service.uploads import MAX_RESIZED_PIXELS

pytestmark = pytest.mark.e2e


def test_a_1_by_100000_png_is_a_fast_400_naming_data_and_the_worker_lives(api):
    before = api.worker_pids()["activations"]
    for width, height in [(1, 100_000), (100_000, 1)]:
        started = time.monotonic()
        response = requests.post(f"{api.inference}/predictions/activations", data=png(width, height),
                                 headers={**api.auth, "Content-Type": "image/png"}, timeout=120)
        elapsed = time.monotonic() - started
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["field"] == "data" and f"{width}x{height}" in body["message"]
        assert str(MAX_RESIZED_PIXELS) in body["message"]
        assert elapsed < 30  # refused from the header: no 22-million-pixel resize (minutes, or the OOM killer)
    good = requests.post(f"{api.inference}/predictions/activations", data=png(40, 30),
                         headers={**api.auth, "Content-Type": "image/png"}, timeout=120)
    assert good.status_code == 200 and good.json()["channels"] == 512
    assert api.worker_pids()["activations"] == before
