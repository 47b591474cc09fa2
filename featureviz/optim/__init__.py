"""Activation maximization, as lucent's optvis splits it, one step a module:

    param/        the image: the article's pixels over scales (pixel), lucent's spectrum (fft, color)
    transforms    what every step does to the image before the network: lucent's random ones, normalize
    objectives    what is raised: channel, neuron, direction, diversity, added and scaled
    readout       the activations the objectives read, computing only what they need
    steps         Adam steps of one stage (cuda_graphs: replaying a CUDA graph on a GPU)
    render        the one loop: stages, steps, fp32 measurements
    batching      when several images may share a batch without changing any of them
    groups        images optimized in groups of a fixed shape
    precision     the arithmetic: strict fp32, TF32, bf16 autocast
"""
