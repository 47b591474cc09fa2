"""A worker's memory settles from its start: every operation's service, in this process, built as
TorchServe's worker builds it (the archive's weights memory-mapped from the file), measured before
its first request, then the soak's mix of requests again and again. From the start the resident
memory grows at most START_BOUND_MB, and after the first loops at most LATE_BOUND_MB
(docs/reliability.md, "A worker's memory").

The bounds are meaningful: a worker whose first class-map request reads the classifier's weights
(0.5 GB of file pages) passes neither; keeping two first-layer activation maps of a 224 px image
(64 x 224 x 224 floats, 12.8 MB each) per loop fails the late one, as a check below sees."""
import gc
import os

import pytest
import psutil
import torch

from featureviz.model.weights import load_state_dict
from featureviz.service.allocator import release_freed_memory
from featureviz.service.service import Service

from featureviz.service.settings import Settings
from tests.support.images import photo

WEIGHTS = {"source": "random", "seed": 0, "trained": False, "sha256": "0" * 64}
IMAGE = {"data": photo(96), "size": b"96"}
LOOP = {  # every operation; small sizes, for the suite's time
    "visualize": [{"layer": 7, "filter": 3, "size": 32, "upscaling_steps": 3, "opt_steps": 3},
                  {"layer": 7, "filter": 4, "size": 32, "upscaling_steps": 3, "opt_steps": 3, "stream": True}],
    "activations": [IMAGE],
    "deconv": [{**IMAGE, "layer": b"14"}],
    "saliency": [IMAGE],
    "gradcam": [IMAGE],
    "occlusion": [{**IMAGE, "window": b"48", "stride": b"48"}],
    "layers": [{"output": "json"}],
    "filters": [{"layer": 3}],
}
SETTLED, LOOPS = 2, 6  # the late bound holds from the end of loop SETTLED
START_BOUND_MB, LATE_BOUND_MB = 200, 50  # the soak's bounds: over its whole run, and after its first minutes
LEAK_PER_LOOP_MB = 2 * 64 * 224 * 224 * 4 / 2**20


def services(weights_file):
    settings = Settings({"precision": "fp32", "cache_max_mb": 0}, environ={})  # no result cache: every request computes
    return {name: Service(name, load_state_dict(weights_file), WEIGHTS, "1.0", torch.device("cpu"), settings)
            for name in LOOP}


def one_loop(services, kept=None):
    for name, bodies in LOOP.items():
        if name not in services:
            continue
        service = services[name]
        parsed = [service.parse(body, {}) if "data" not in body else service.parse(None, body) for body in bodies]
        batch = service.run(parsed, emit=lambda *args: True)
        assert [a.status for a in batch.answers] == [200] * len(bodies), [a.body[:200] for a in batch.answers]
        if kept is not None:  # a leak, for the check that the bound sees one
            kept += [torch.ones(64, 224, 224), torch.ones(64, 224, 224)]


def resident_mb():
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def curve(services, kept=None) -> list[float]:
    """Resident MB before the first request, then after each loop."""
    release_freed_memory()  # what building the services left on the heap, as a worker's first batch does
    found = [resident_mb()]
    for _ in range(LOOPS):
        one_loop(services, kept)
        found.append(resident_mb())
    return found


@pytest.mark.slow
def test_memory_settles_from_the_workers_start(model_dir):
    every = services(os.path.join(model_dir, "vgg16_bn.pth"))
    found = curve(every)
    assert found[-1] - found[0] <= START_BOUND_MB, f"resident MB from the start, loop by loop: {found}"
    assert found[-1] - found[SETTLED] <= LATE_BOUND_MB, f"resident MB from the start, loop by loop: {found}"
    # The same measurement, with two first-layer activation maps kept per loop (and, for time, the
    # network-only operations), fails.
    kept = []
    leaked = curve({name: every[name] for name in ("layers", "filters")}, kept)
    assert LEAK_PER_LOOP_MB * (LOOPS - SETTLED) > LATE_BOUND_MB
    assert leaked[-1] - leaked[SETTLED] > LATE_BOUND_MB, f"a leak of {LEAK_PER_LOOP_MB:.1f} MB a loop: {leaked}"
