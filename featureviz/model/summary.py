"""What the network is: its layer table (the model summary) and the learned convolution kernels."""
import torch
from torch import nn

from .geometry import output_side


def layer_table(net, side: int = 224, classifier: bool = True) -> list[dict]:
    """One row per module of `features` and (if `classifier`) of `classifier`, with its output for
    a square `side` input."""
    rows = []
    channels = 3
    for index, module in enumerate(net.features):
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
        rows.append(_row("features", index, module, channels, output_side(net.features, index, side)))
    width = channels * _pooled_cells(net.avgpool.output_size)
    for index, module in enumerate(net.classifier if classifier else []):
        if isinstance(module, nn.Linear):
            width = module.out_features
        rows.append(_row("classifier", index, module, width, None))
    return rows


def _pooled_cells(output_size) -> int:
    h, w = output_size if isinstance(output_size, tuple) else (output_size, output_size)
    return h * w


def _row(part, index, module, channels, side):
    return {"index": index, "name": f"{part}.{index}", "type": type(module).__name__, "channels": channels,
            "spatial": None if side is None else [side, side],
            "params": sum(p.numel() for p in module.parameters())}


def kernels(features, layer: int, filter: int | None = None) -> torch.Tensor:
    """The weights of conv `features[layer]`: (out, in, k, k), or (1, in, k, k) for one `filter`."""
    weight = features[layer].weight.detach().float().cpu().contiguous()
    return weight if filter is None else weight[filter:filter + 1]
