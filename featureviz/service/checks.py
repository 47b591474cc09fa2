"""Checks of a request against the network: a layer's channels, and an input large enough for it."""
from ..model.geometry import min_input_side, output_channels
from .refusals import BadRequest


def check_channels(features, layer: int, channels: list, field: str = "filter", nullable: bool = False):
    """Each of `channels` (None: not asked, where `nullable`) is a channel of `features[layer]`'s output."""
    count = output_channels(features, layer)
    for channel in channels:
        if channel is not None and channel >= count:
            expected = "integers" if field == "filters" else "an integer"
            raise BadRequest(field, f"{channel} is out of range; layer {layer} has {count} channels: "
                                    f"expected {expected} in 0..{count - 1}" + (" or null" if nullable else ""))


def check_side(features, layer: int, size: int):
    smallest = min_input_side(features, layer)
    if size < smallest:
        raise BadRequest("size", f"{size} is too small for layer {layer}: its output would be empty; "
                                 f"expected at least {smallest}")
