"""Activation maximization, as lucent's optvis splits it: the image and its schedule (param),
what happens to it between scales (transform), what it maximizes (objectives), the loop that
takes an objective (render, with CUDA graphs on a GPU), when images may share a batch
(batching), and the arithmetic (precision)."""
