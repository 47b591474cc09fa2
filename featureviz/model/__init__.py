"""The model: torchvision's vgg16_bn (network), its shapes (geometry), the single-channel network
the optimization runs (lean), the weights it loads, and what it is (summary)."""
