"""Autograd on where a caller turned it off: optimizing pixels and attributions need gradients
even when a model server runs us under no_grad or inference_mode (as TorchServe's BaseHandler
does)."""
import contextlib

import torch


@contextlib.contextmanager
def gradients():
    """Autograd on, even under the caller's no_grad or inference_mode."""
    with torch.inference_mode(False), torch.enable_grad():
        yield
