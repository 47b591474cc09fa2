"""The visualize operation's request and run."""
import torch


def test_visualize_request_gets_gradients_under_inference_mode(engine):
    from featureviz.service.operations.visualize.images import render_images
    from featureviz.service.operations.visualize.request import parse_visualize
    request = parse_visualize({"layer": 7, "filter": 12, "size": 16, "upscaling_steps": 2, "opt_steps": 3}, engine)
    with torch.inference_mode():
        under = render_images(engine.features, [request], "fp32")[0]
    plain = render_images(engine.features, [request], "fp32")[0]
    assert torch.equal(under.image, plain.image) and under.activation_final > under.activation_start
