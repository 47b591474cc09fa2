"""A worker's memory, for operators: its resident and anonymous bytes as gauges after every batch,
and past the memory ceiling, its service restarted in place once the batch is answered, with no
request lost."""
import logging

import pytest

from bench.in_process import make_handler
from tests.support.handler import call
from tests.support.images import photo

REQUEST = {"data": photo(48), "layer": b"9", "size": b"32"}


def test_every_batch_reports_the_workers_resident_and_anonymous_memory(model_dir):
    service = make_handler("activations", model_dir).service
    batch = service.run([service.parse(None, REQUEST)])
    gauges = {m.name: m for m in batch.metrics if m.name.startswith("Worker")}
    resident, anonymous = gauges["WorkerResidentMemoryBytes"], gauges["WorkerAnonymousMemoryBytes"]
    assert resident.kind == anonymous.kind == "gauge" and resident.unit == "bytes"
    assert 200 * 2**20 < anonymous.value < resident.value  # torch alone is some hundred MB
    assert batch.restart is None  # far from the default ceiling


def test_past_the_ceiling_the_service_restarts_in_place_after_answering(model_dir, monkeypatch, caplog):
    monkeypatch.setenv("FEATUREVIZ_MEMORY_CEILING_MB", "1")
    handler = make_handler("activations", model_dir)
    first = handler.service
    with caplog.at_level(logging.WARNING):
        out, statuses, _, _ = call(handler, [{**REQUEST}, {**REQUEST, "layer": b"99"}])
    assert statuses == [200, 400]  # the batch answered, its refusal too
    assert handler.service is not first and first.model is None  # a new service; the old one let go
    said = caplog.text
    assert "past the ceiling of 1 MB (memory_ceiling_mb, FEATUREVIZ_MEMORY_CEILING_MB)" in said
    assert "activations restarts its service" in said
    assert "after its service restarted: the memory is not the service's to give back" in said  # 1 MB: always
    again, statuses, _, _ = call(handler, [{**REQUEST}])
    assert statuses == [200] and again[0] == out[0]  # the restarted service answers as before


@pytest.mark.parametrize("bad", ["-5", "lots"])
def test_a_bad_ceiling_stops_the_worker_at_its_start_naming_it(model_dir, monkeypatch, bad):
    monkeypatch.setenv("FEATUREVIZ_MEMORY_CEILING_MB", bad)
    with pytest.raises(ValueError, match="memory_ceiling_mb"):
        make_handler("layers", model_dir)
