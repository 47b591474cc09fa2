"""One precision per deployment: the archive names it, decided once where the model config says
auto, so that workers starting together on a loaded machine cannot measure their way into
different arithmetic (and answer different bytes for the same request)."""
import itertools

import pytest
import yaml

from bench.in_process import make_context
from featureviz_handler import FeatureVizHandler
from serving import archive


@pytest.fixture
def noisy_probe(monkeypatch):
    """A processor with bf16 units whose probe, under load, measures 2.0x then 1.1x, in turn."""
    measured = []
    speedups = itertools.cycle([2.0, 1.1])

    def probe():
        measured.append(next(speedups))
        return measured[-1]
    monkeypatch.setattr("featureviz.optim.precision.cpu_computes_bf16", lambda: True)
    monkeypatch.setattr("featureviz.optim.precision.bf16_speedup", probe)
    monkeypatch.delenv("FEATUREVIZ_PRECISION", raising=False)
    return measured


def workers(model_dir, config_text, n=3):
    """The precision each of `n` visualize workers computes in, started with this model config."""
    found = []
    for _ in range(n):
        context = make_context("visualize", model_dir)
        context.model_yaml_config = yaml.safe_load(config_text)
        handler = FeatureVizHandler()
        handler.initialize(context)
        found.append(handler.service.operation.precision)
    return found


@pytest.mark.slow
def test_workers_of_one_archive_compute_in_the_precision_it_names(model_dir, noisy_probe):
    with open(archive.MODEL_CONFIG) as f:
        deciding_each = f.read()
    assert "  precision: auto" in deciding_each
    assert sorted(set(workers(model_dir, deciding_each))) == ["bf16", "fp32"]  # what a cluster did on Zen 4
    noisy_probe.clear()
    decided = archive.decided_precision()
    assert decided == "bf16" and len(noisy_probe) == 1  # measured once, for the archive
    assert workers(model_dir, archive.model_config(decided)) == ["bf16"] * 3 and len(noisy_probe) == 1


def test_a_named_precision_is_kept_and_a_wrong_one_refused(monkeypatch):
    monkeypatch.setattr("featureviz.optim.precision.bf16_speedup",
                        lambda: pytest.fail("measured though a precision was named"))
    assert archive.decided_precision("fp32") == "fp32"
    assert "  precision: fp32  # decided when the archive was built" in archive.model_config("fp32")
    with pytest.raises(ValueError, match="fp16"):
        archive.decided_precision("fp16")
