"""Feature visualization of VGG-16 (batch-norm variant): the engine. Plain PyTorch, no model
server imported.

The pipeline, one package a step:
    model        the network, its geometry, the lean single-channel network, weights, summary
    optim        activation maximization: param, transform, objectives, steps, render, batching
    attribution  activations, deconvnet, saliency / Grad-CAM / occlusion maps
    pictures     PNGs a person reads
    service      requests in, answers out: fields, uploads, registry, cache, worker
"""

# Part of every cache key: results made by another version of this code are not reused.
__version__ = "0.3.0"
