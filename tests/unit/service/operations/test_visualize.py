"""The visualize operation's request and run."""
import torch


def test_visualize_request_gets_gradients_under_inference_mode(engine):
    from featureviz.service.operations.visualize.request import parse_visualize
    from featureviz.service.operations.visualize.run import run_visualize
    request = parse_visualize({"layer": 7, "filter": 12, "size": 16, "upscaling_steps": 2, "opt_steps": 3}, engine)
    with torch.inference_mode():
        under = run_visualize(engine.features, [request])[0]
    plain = run_visualize(engine.features, [request])[0]
    assert torch.equal(under.image, plain.image) and under.activation_final > under.activation_start
