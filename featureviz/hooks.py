"""Forward hooks that hold a layer's output, released on context exit."""
from torch import nn


class LayerOutput:
    """Holds the output of `module` from the latest forward pass.

    The output itself is stored, not a copy, so gradients flow from it back to the input.
    That is right only if no in-place operation runs on it afterwards: callers run the
    network truncated at the hooked layer (VGG's ReLUs are in-place), or pass clone=True.
    """

    def __init__(self, module: nn.Module, clone: bool = False):
        self.module = module
        self.clone = clone
        self.output = None
        self._handle = None

    def _hook(self, module, inputs, output):
        self.output = output.clone() if self.clone else output

    def __enter__(self):
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        self._handle = None
        self.output = None
        return False
