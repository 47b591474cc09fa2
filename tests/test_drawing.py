"""lucent's way of drawing (param fft, decorrelated colour, random transforms, neuron, negative,
diversity) and the article's default, which must not change."""
import hashlib

from featureviz.pictures import to_png
from featureviz.service.visualize import parse_visualize
from featureviz.service.visualize_batch import png_text, run_visualize

PINNED = {"layer": 7, "filter": 12, "size": 16, "upscaling_steps": 2, "opt_steps": 2}
# The article's picture and cache key for PINNED, as they were before the drawing fields existed
# (fp32, seeded random weights, on the CPU).
PINNED_PNG_SHA256 = "12493207df64d1da7acafc598d9075fef83596efa7f916f0cf8518523e132f87"
PINNED_CACHE_KEY = "85b02aa44f070bea087e6a195459c525d29aedb524479a85c0601449424ca9cd"
CONTEXT = {"weights": "0", "device": "cpu", "precision": "fp32", "model_version": "1.0"}


def pinned_png(engine, fields):
    request = parse_visualize(fields, engine)
    image = run_visualize(engine.features, [request], "fp32")[0]
    return to_png(image.image, png_text(request, image, "fp32", {})), request.cache_key(**CONTEXT)


def test_the_article_default_gives_the_same_bytes_and_cache_key_as_before(engine):
    png, key = pinned_png(engine, PINNED)
    assert hashlib.sha256(png).hexdigest() == PINNED_PNG_SHA256
    assert key == PINNED_CACHE_KEY
