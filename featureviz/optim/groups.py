"""Images optimized in groups of a fixed shape: each image depends only on its own fields and G.

cuDNN and oneDNN choose their algorithms, and so the order of each sum, by shape. Optimize the
images of a `filters` request always G at a time, at every side, and every image meets the same
kernels whatever shares its group: its bytes depend on its own filter, seed and schedule and on G,
not on its neighbours nor on its slot (tests/unit/optim/test_groups.py checks it on the CPU; the GPU check,
docs/performance.md "Groups of a fixed shape", measures it on a GPU). A group that is not full is
filled with stand-ins, repeats of its last image, whose results are dropped: they take their
slots in the group's passes, which the fixed shape costs anyway, and make no picture.

G = 1 is the article's image alone, and what render.visualize gives.
"""
from .batching import every_side
from .param import Schedule
from .render import Visualization, visualize_many


def visualize_group(features, layer: int, filters: list[int], seeds: list[int], group_size: int,
                    schedule: Schedule = Schedule(), precision: str = "fp32", cuda_graphs: bool = True,
                    on_scale=None) -> list[Visualization]:
    """render.visualize_many of at most `group_size` (filter, seed) pairs, as one group of exactly
    `group_size` images at every side. `on_scale` as there, for these images only."""
    n = len(filters)
    if not 1 <= n <= group_size or len(seeds) != n:
        raise ValueError(f"a group holds 1 to {group_size} images, one seed per filter")
    stand_ins = group_size - n

    def mine(scale, side, activations, images):
        on_scale(scale, side, activations[:n], images[:n])

    results = visualize_many(features, layer, list(filters) + [filters[-1]] * stand_ins,
                             list(seeds) + [seeds[-1]] * stand_ins, schedule, precision, cuda_graphs,
                             batch_when=every_side,
                             on_scale=mine if on_scale is not None else None)
    return results[:n]
