"""Images optimized in groups of a fixed shape: each image depends only on its own render and G.

cuDNN and oneDNN choose their algorithms, and so the order of each sum, by shape. Optimize the
images of a `filters` request always G at a time, and every image meets the same kernels whatever
shares its group. Where those kernels also split their work by slot (cuDNN's on a GPU may), an
image's sums would still depend on where it sits: at each side, featureviz.optim.batching's probe
(`slots_are_exact`) says whether a group of G is independent of neighbours and slots for this
network, device and precision; where it is not, the group's images run one by one at that side.
Either way an image's bytes depend on its own filter, seed and schedule and on G, not on its
neighbours nor on its slot (tests/unit/optim/test_groups.py on the CPU, tests/gpu/test_cuda.py on a
GPU). A group that is not full is filled with stand-ins, renders like its last one, whose results
are dropped: they take their slots in the group's passes, which the fixed shape costs anyway, and
make no picture.

G = 1 is each image alone.
"""
from .batching import slots_are_exact
from .render import Render, Visualization, render


def render_group(features, renders: list[Render], group_size: int, stand_in, precision: str = "fp32",
                 cuda_graphs: bool = True, on_stage=None, pool_kernel: bool = True) -> list[Visualization]:
    """render.render of at most `group_size` renders as one group of exactly `group_size` at every
    side; `stand_in()` makes a render like the last one. `on_stage` as there, for these renders only."""
    n = len(renders)
    if not 1 <= n <= group_size:
        raise ValueError(f"a group holds 1 to {group_size} images")

    def mine(stage, side, values, pictures):
        on_stage(stage, side, values[:n], pictures[:n])

    results = render(features, list(renders) + [stand_in() for _ in range(group_size - n)], precision,
                     cuda_graphs, batch_when=slots_are_exact, on_stage=mine if on_stage is not None else None,
                     pool_kernel=pool_kernel)
    return results[:n]
