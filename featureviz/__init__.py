"""Feature visualization of VGG-16 (batch-norm variant): the engine.

Plain PyTorch, no TorchServe import. The pipeline, one module a step:
weights -> network -> hooks -> render (activation maximization) / activations,
with image helpers and request validation (fields) beside them.
"""

# Part of every cache key: results made by another version of this code are not reused.
__version__ = "0.3.0"
