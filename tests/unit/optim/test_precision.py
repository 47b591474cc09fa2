"""featureviz.optim.precision: the bf16 probe and what `precision: auto` chooses."""
import os
import subprocess
import sys

import pytest
import torch

from featureviz.optim import precision
from tests.support import ROOT


def test_the_bf16_probe_leaves_the_threads_and_the_global_generator_as_they_were():
    threads = torch.get_num_threads()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    with torch.inference_mode():  # as BaseHandler runs its steps
        speedup = precision.bf16_speedup.__wrapped__(channels=8, side=16, rounds=1)
    assert speedup > 0 and torch.get_num_threads() == threads and torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_auto_precision_measures_bf16_slower_where_onednn_has_no_bf16_instructions():
    """oneDNN capped below AVX512-BF16 emulates bf16, as on a processor without it: whatever the
    processor's flags say, the measurement finds bf16 slower and `auto` keeps fp32."""
    code = ("import torch; from featureviz.optim import precision as p; "
            "print(p.bf16_speedup(), p.default_precision(torch.device('cpu')))")
    environ = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX512_CORE",
                   PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    speedup, chosen = done.stdout.split()
    assert 0 < float(speedup) < precision.MIN_BF16_SPEEDUP and chosen == "fp32"
