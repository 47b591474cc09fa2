"""What a trained network says about an image: per-channel activations, ZFNet's deconvnet, and
captum-based maps (saliency, Grad-CAM) with occlusion."""
