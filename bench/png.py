"""Does Pillow's PNG encoder let a second thread work? A visualize-sized picture (408 px, seed 0's
noise upscaled and blurred) encoded N times on one thread and on two (featureviz.pictures.to_png,
what a GPU worker's threads run while the next group computes: docs/performance.md, "PNG encoding
beside the GPU"). Two threads as fast as one would mean the encoder holds Python's lock.

    python -m bench png [--images 24] [--side 408]
"""
import threading

import torch

from featureviz.optim.param.pixel import box_blur, start_noise, upscale
from featureviz.pictures import to_png

from .cli import section_parser
from .drawing import cpu_name
from .table import Report
from .timing import timed


def on_threads(encode, n: int, threads: int) -> float:
    """Seconds to encode n pictures, split over `threads` threads."""
    def work():
        for _ in range(n // threads):
            encode()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    seconds, _ = timed(lambda: ([w.start() for w in workers], [w.join() for w in workers]))
    return seconds


def main(argv=None):
    parser = section_parser("png", __doc__)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--side", type=int, default=408)
    args = parser.parse_args(argv)
    picture = box_blur(upscale(start_noise(56, 0), args.side), 5).clamp(0, 1)
    text = {"layer": 40, "filter": 3, "activation_final": "0.5"}
    encoders = {"Pillow (to_png)": lambda: to_png(picture, text)}
    report = Report()
    report.say(f"{cpu_name()}, {torch.get_num_threads()} torch threads, {args.images} pictures of {args.side} px\n")
    table = report.table(["encoder", "ms a picture, one thread", "two threads / one thread (speed)", "bytes"])
    for name, encode in encoders.items():
        encode()
        one = on_threads(encode, args.images, 1)
        two = on_threads(encode, args.images, 2)
        table.row(name, f"{1000 * one / args.images:.1f}", f"{one / two:.2f}", len(encode()))
