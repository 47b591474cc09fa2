"""The service: what a model server's worker runs. A request's fields (fields, uploads), the
operations (registry: visualize, and explain's image and network operations), a batch end to end
(worker: cache, merging, exact batching, out-of-memory, answers), and the worker's memory
(allocator). No model server is imported here."""
