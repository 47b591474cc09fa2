"""One precision per deployment: the archive names it, decided once where the model config says
auto, so that workers starting together on a loaded machine cannot measure their way into
different arithmetic (and answer different bytes for the same request)."""
import pytest
import yaml

from bench.in_process import make_context
from featureviz_handler import FeatureVizHandler
from serving import archive


class NoisyProbe:
    """bf16's speedup as a loaded machine measures it: the answers in `speedups`, in turn."""

    def __init__(self, speedups):
        self.speedups = list(speedups)
        self.measured = []

    def __call__(self):
        self.measured.append(self.speedups[len(self.measured) % len(self.speedups)])
        return self.measured[-1]


@pytest.fixture
def noisy_probe(monkeypatch):
    """A processor with bf16 units whose probe measures 2.0x then 1.1x, in turn, from the fixture's start."""
    probe = NoisyProbe([2.0, 1.1])
    monkeypatch.setattr("featureviz.optim.precision.cpu_computes_bf16", lambda: True)
    monkeypatch.setattr("featureviz.optim.precision.bf16_speedup", lambda: probe())
    monkeypatch.delenv("FEATUREVIZ_PRECISION", raising=False)
    return probe


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
    noisy_probe.measured.clear()  # its answers start again at 2.0x
    decided = archive.decided_precision()
    assert decided == "bf16" and noisy_probe.measured == [2.0]  # measured once, for the archive
    assert workers(model_dir, archive.model_config(decided)) == ["bf16"] * 3 and noisy_probe.measured == [2.0]


def test_a_named_precision_is_kept_and_a_wrong_one_refused(monkeypatch):
    monkeypatch.setattr("featureviz.optim.precision.bf16_speedup",
                        lambda: pytest.fail("measured though a precision was named"))
    assert archive.decided_precision("fp32") == "fp32"
    assert "  precision: fp32  # decided when the archive was built" in archive.model_config("fp32")
    with pytest.raises(ValueError, match="fp16"):
        archive.decided_precision("fp16")
