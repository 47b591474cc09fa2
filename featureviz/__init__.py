"""Feature visualization of VGG-16 (batch-norm variant): the engine.

Plain PyTorch, no TorchServe import. The pipeline, one module a step:
weights -> network -> hooks -> render (activation maximization) / activations,
with image helpers and request validation (fields) beside them.
"""
