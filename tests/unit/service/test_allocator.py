"""featureviz.service.allocator, each case in a fresh Python: malloc settings last for the process."""
import json
import subprocess
import sys

import pytest

from tests.support import ROOT

PROBE = """
import json, resource, sys, torch
from featureviz.service.allocator import keep_freed_memory, release_freed_memory
from featureviz.model.network import build_model
from featureviz.optim.param.pixel import Schedule
from bench.ours import visualize
from featureviz.model.weights import random_state_dict
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
features = build_model(random_state_dict(0)).features
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
# Layer 7 at 408 px, as the last scale of a default request: 42 MB activations.
schedule = Schedule(size=408, upscaling_steps=1, opt_steps=3)
visualize(features, 7, 0, schedule)
before = faults()
visualize(features, 7, 0, schedule)
faults_repeated = faults() - before
rss_freed = rss_mb()
released = release_freed_memory()
print(json.dumps({"applied": applied, "faults": faults_repeated, "rss_freed": rss_freed,
                  "rss_released": rss_mb(), "released": released}))
"""


def probe(mode):
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_kept_memory_is_reused_without_page_faults_and_released_on_demand():
    default, keep = probe("default"), probe("keep")
    assert keep["applied"] is True  # glibc, as on our machines and CI
    # By default every step maps its 42 MB activations afresh: 10,400 page faults each.
    assert default["faults"] > 50_000
    assert keep["faults"] < 1_000
    # What the request freed stays with the process until released.
    assert keep["rss_freed"] - keep["rss_released"] > 400
    assert keep["released"] is True
