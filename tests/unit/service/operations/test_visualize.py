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


def test_pngs_encoded_by_threads_are_the_same_bytes(engine, tmp_path):
    """What a GPU worker does with a group's PNGs (its encoders), here on the CPU."""
    import io
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from featureviz.service.channel import Channel
    from tests.support.operations import operation_of

    fields = {"layer": 7, "filters": [3, 5, 9], "size": 16, "upscaling_steps": 2, "opt_steps": 2, "output": "zip"}
    pictures = {}
    for threaded in (False, True):
        visualize = operation_of(engine, "visualize", precision="fp32")
        visualize.encoders = ThreadPoolExecutor(2) if threaded else None
        result = visualize.run([visualize.parse(fields)], Channel())[0]
        pictures[threaded] = result.picture({})
    import zipfile
    plain, threaded = (zipfile.ZipFile(io.BytesIO(z)) for z in (pictures[False], pictures[True]))
    assert plain.namelist() == threaded.namelist() and len(plain.namelist()) == 3
    for name in plain.namelist():
        assert plain.read(name) == threaded.read(name)
        assert Image.open(io.BytesIO(plain.read(name))).text["filter"] in ("3", "5", "9")
