"""The optimization's inner loop on a GPU: after a few eager steps, each step replays a CUDA graph.

A step on a small image is a few hundred tiny kernels: launching them from Python costs more than
running them. Capturable Adam keeps its step count on the GPU, so the graph holds the whole step
and the loop has no host sync.
"""
import torch

from .steps import adams, step

WARMUP_STEPS = 2  # eager steps before a scale's graph is captured (they count as steps)


class GraphPool:
    """The memory pool the graphs of one visualization share: that of its first graph, kept alive
    until the visualization ends. A dropped graph's pool stays reserved, and unusable by anything
    else, until PyTorch's cache is emptied, so leaving the context empties it
    (docs/performance.md, "CUDA graphs")."""

    def __init__(self):
        self.first = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.first is not None:
            self.first = None
            torch.cuda.empty_cache()
        return False


def optimize_graphed(network, batch, precision, graphs: GraphPool):
    """steps.optimize, with the steps after the first WARMUP_STEPS replaying a graph of one step
    (renders without random transforms: a graph replays the same arithmetic)."""
    optimizers = adams(batch, capturable=True)
    steps = batch[0][1].steps
    parameters = [p for _, stage in batch for p in stage.parameters]
    device = parameters[0].device
    main, side = torch.cuda.current_stream(device), torch.cuda.Stream(device)
    side.wait_stream(main)
    with torch.cuda.stream(side):  # warm-up and capture must not run on the default stream
        for _ in range(min(WARMUP_STEPS, steps)):
            for optimizer in optimizers:
                optimizer.zero_grad()
            values = step(network, batch, optimizers, precision)
        if steps > WARMUP_STEPS:
            for optimizer in optimizers:
                optimizer.zero_grad()  # to None: the captured backward writes x.grad, not adds to it
            graph = torch.cuda.CUDAGraph()
            graph.capture_begin(graphs.first.pool() if graphs.first else None, capture_error_mode="thread_local")
            try:
                values = step(network, batch, optimizers, precision)
            finally:
                graph.capture_end()
            for _ in range(steps - WARMUP_STEPS):
                graph.replay()
            if graphs.first is None:
                graphs.first = graph
    main.wait_stream(side)
    values = values.detach().clone()
    for p in parameters:
        p.grad = None  # the last tensors from the graph's memory that would outlive it
    return values
