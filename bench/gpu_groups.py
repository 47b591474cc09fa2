"""The GPU section's fixed group shapes: a whole layer in groups of G, the same image in
another group, one image alone and at shape G (docs/performance.md, "Groups of a fixed shape")."""
import statistics
import sys
from functools import partial

import torch

from featureviz.optim.param.pixel import Schedule

from . import timing
from .ours import visualize, visualize_group

timed = partial(timing.timed, device="cuda")


def section_groups(report, features, seed, layer, count, sizes, budget_s, singles=8, schedule=Schedule()):
    """The issue's GPU check of fixed group shapes (docs/performance.md, "Groups of a fixed
    shape"): for each precision and group shape G, the `count` filters of `layer` in groups of G
    at the default schedule, as a `filters: "all"` request runs them (CUDA graphs, deterministic
    cuDNN), for at most `budget_s` seconds of computing (then the total is extrapolated from the
    groups done, and marked so); whether an image is the same in another group and slot; the activation reached against single images; the single
    request's latency at shape 1 (what it runs) and of one image at shape G (the 1.3x rule)."""
    n_scales = len(schedule.sides())
    sweep_rows, invariance_rows, single_rows = [], [], []
    for precision in ("tf32", "bf16"):
        alone = {}
        visualize(features, layer, 0, schedule, seed, precision)  # warm: shape 1's kernels
        for f in range(singles):
            single_s, result = timed(lambda: visualize(features, layer, f, schedule, seed, precision))
            alone[f] = (single_s, result)
        single_s = statistics.median(s for s, _ in alone.values())
        for g in sizes:
            torch.cuda.reset_peak_memory_stats()
            done, reached, images, elapsed = 0, [], {}, 0.0
            while done < count and elapsed < budget_s:
                filters = list(range(done, min(done + g, count)))
                seconds, results = timed(lambda: visualize_group(features, layer, filters, [seed] * len(filters), g,
                                                                 schedule, precision))
                elapsed += seconds
                reached += [r.activation_final for r in results]
                images.update({f: r for f, r in zip(filters, results) if f < singles})
                done += len(filters)
            total = elapsed if done == count else elapsed / done * count
            memory = torch.cuda.max_memory_allocated() / 2**30
            ratio = statistics.mean(images[f].activation_final / alone[f][1].activation_final for f in images)
            sweep_rows.append((precision, g, f"{done} of {count}", f"{elapsed:.1f}",
                               f"{total:.1f}" + ("" if done == count else " (extrapolated)"), f"{total / count:.4f}",
                               f"{statistics.mean(reached):.4g}", f"{ratio:.3f}", f"{memory:.1f}"))
            # Filter 3 again: in the last slot, beside the layer's last filters, and with stand-ins.
            others = list(range(count - (g - 1), count))
            moved = visualize_group(features, layer, others + [3], [seed] * g, g, schedule, precision)[-1]
            lonely_s, lonely = timed(lambda: visualize_group(features, layer, [3], [seed], g, schedule, precision))
            first = images[3].image
            differs = max((moved.image - first).abs().max().item(), (lonely[0].image - first).abs().max().item())
            invariance_rows.append((precision, g, bool(torch.equal(moved.image, first)),
                                    bool(torch.equal(lonely[0].image, first)), f"{differs:.3g}",
                                    bool(torch.equal(first, alone[3][1].image))))
            single_rows.append((precision, g, f"{single_s:.3f}", f"{lonely_s:.3f}", f"{lonely_s / single_s:.2f}"))
            # As it goes: a run stopped by its time limit still leaves what it measured.
            print("groups:", sweep_rows[-1], invariance_rows[-1], single_rows[-1], file=sys.stderr, flush=True)
    report.rows(["precision", "G", "filters done", "seconds", f"{count} filters (s)", "per filter (s)",
                 "mean activation reached", f"activation / single's (filters 0-{singles - 1})",
                 "peak GPU memory (GiB)"], sweep_rows,
                f"### A whole layer in groups of a fixed shape (layer {layer}, {count} filters, default schedule: "
                f"{n_scales} scales, seed {seed})")
    report.rows(["precision", "G", "equal in the last slot beside other filters", "equal in a group of stand-ins",
                 "max pixel difference", "equal to the single request's image"], invariance_rows,
                f"### The same image in another group (filter 3, layer {layer})")
    report.rows(["precision", "G", "shape 1 (s)", "shape G (s)",
                 "shape G / shape 1 (single requests at shape G where at most 1.3)"], single_rows,
                "### One image: alone (shape 1, a single request) and at shape G (with G - 1 stand-ins)")
