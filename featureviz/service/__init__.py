"""The service: what a model server's worker runs. A request's fields (fields, uploads), the
refusals, the operations (operations: visualize, image maps, activations, network; one registry),
a TorchServe batch end to end (service: cache, groups, out-of-memory, answers), and the worker's
memory (allocator). No model server is imported here."""
