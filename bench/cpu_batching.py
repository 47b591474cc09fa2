"""The CPU section's --batching table: N filters one after another, in the engine's exact batch,
and in one batch at every side, against the single-filter images."""
import resource

import torch

from featureviz.optim.batching import every_side
from featureviz.optim.param.pixel import Schedule

from .ours import visualize, visualize_many
from .table import Report
from .timing import timed


def batching_table(report: Report, features, layers, filters, seed):
    """N filters one after another (what `filters` did up to engine 0.3.0), in the engine's exact
    batch (render.visualize_many: batched only at the sides its probe finds batch-invariant; timed
    first with the probes, then again on the next N filters with the verdicts remembered), and
    in one batch at every side (visualize_many with every_side), against the single-filter images."""
    report.say()
    table = report.table(["layer", "filters", "one after another (s)", "exact batch, with probes (s)",
                          "/ one by one", "images equal", "sides batched", "exact batch, probes remembered (s)",
                          "/ one by one", "batch at every side (s)", "/ one by one", "images equal",
                          "max pixel difference", "peak RSS (GB)"])
    n = len(filters)
    for layer in layers:
        one_s, singles = timed(lambda: torch.stack([visualize(features, layer, f, seed=seed).image for f in filters]))
        exact_s, exact = timed(lambda: visualize_many(features, layer, filters, [seed] * n))
        again_s, _ = timed(lambda: visualize_many(features, layer, [f + n for f in filters], [seed] * n))
        batch_s, batch = timed(lambda: torch.stack([r.image for r in visualize_many(
            features, layer, filters, [seed] * n, batch_when=every_side)]))
        exact_equal = sum(torch.equal(r.image, single) for r, single in zip(exact, singles))
        as_png = [(img * 255).round().to(torch.uint8) for img in (singles, batch)]
        equal = sum(bool((a == b).all()) for a, b in zip(*as_png))
        sides = exact[0].batched_sides
        sides = f"{len(sides)} of {len(Schedule().sides())} ({sides[0]}-{sides[-1]} px)" if sides else "none"
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        table.row(layer, n, f"{one_s:.1f}", f"{exact_s:.1f}", f"{exact_s / one_s:.2f}", f"{exact_equal} of {n}",
                  sides, f"{again_s:.1f}", f"{again_s / one_s:.2f}", f"{batch_s:.1f}", f"{batch_s / one_s:.2f}",
                  f"{equal} of {n}", f"{(singles - batch).abs().max().item():.3g}", f"{peak_gb:.1f}")
