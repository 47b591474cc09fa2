"""The GPU check, `make gpu-check`: one run of a few minutes on an H100 or H200, printed as one
Markdown table (docs/performance.md, "On a GPU: the check"):

- the seed article's loop (bench.peers.seed_visualize) beside ours, one filter at layers 7 and 40;
- one filter served: a default request at `--layer` through the handler on gpu_id 0, cache off;
- a whole layer served: {"layer": L, "filters": "all", "output": "zip"} through the handler, and the
  mean activation its first images reach against the same filters' single requests;
- groups of the deployment's shape G: at how many sides the probe trusts them
  (featureviz.optim.batching.slots_are_exact), and whether filter 3 is the same picture in the last
  slot beside other filters and among stand-ins;
- the CUDA tests' summary (tests/gpu).

    python -m bench gpu_check [--device cuda] [--layer 40] [--filters 512] [--precisions tf32 bf16]
                              [--group-size 16] [--out FILE]

`--tiny` runs the same code at a small schedule (on a CPU: `--device cpu --tiny --layer 7 --filters 4`).
"""
import dataclasses
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import torch
from PIL import Image

from featureviz.model.geometry import output_channels
from featureviz.model.network import build_model
from featureviz.model.weights import random_state_dict
from featureviz.optim.batching import slots_are_exact
from featureviz.optim.objectives import channel
from featureviz.optim.param.pixel import Schedule
from featureviz.optim.readout import readout

from . import in_process, timing
from .cli import section_parser
from .ours import visualize, visualize_group
from .peers import seed_visualize
from .table import Report


def handler_for(device, precision: str, folder: str, filters: int):
    """A visualize handler as TorchServe starts it on this device, in `precision`, cache off."""
    os.environ.update(FEATUREVIZ_PRECISION=precision, FEATUREVIZ_CACHE_MAX_MB="0",
                      FEATUREVIZ_MAX_FILTERS=str(max(filters, 1)))
    return in_process.make_handler("visualize", folder, 0 if device.type == "cuda" else None)


def served(handler, fields: dict, device):
    """(seconds, body) of one request through the handler, its status checked."""
    seconds, (out, statuses, _, _) = timing.timed(lambda: in_process.call(handler, [{"body": fields}]), device)
    if statuses != [200]:
        raise RuntimeError(f"{fields} answered {statuses[0]}: {out[0][:300]!r}")
    return seconds, out[0]


def final_activation(png: bytes) -> float:
    return float(Image.open(io.BytesIO(png)).text["activation_final"])


def layer_rows(device, precision, folder, layer, filters, singles, schedule):
    handler = handler_for(device, precision, folder, filters)
    fields = {"layer": layer, **dataclasses.asdict(schedule)}
    served(handler, {**fields, "filter": 0, "seed": 1}, device)  # warm: the probes, cuDNN's kernels
    single_s = sorted(served(handler, {**fields, "filter": 0, "seed": s}, device)[0] for s in (2, 3, 4))[1]
    every = "all" if filters >= output_channels(handler.service.model.features, layer) else f"0-{filters - 1}"
    whole_s, body = served(handler, {**fields, "filters": every, "output": "zip"}, device)
    pngs = zipfile.ZipFile(io.BytesIO(body))
    grouped = [final_activation(pngs.read(name)) for name in sorted(pngs.namelist())[:singles]]
    alone = [final_activation(served(handler, {**fields, "filter": f}, device)[1]) for f in range(len(grouped))]
    reached = sum(grouped) / sum(alone)
    group = handler.service.operation.group_size
    return [(f"one filter served, layer {layer}", precision, f"{single_s:.3f} s", "median of 3", "<= 0.25 s"),
            (f"a whole layer served as a zip ({filters} filters, G = {group})", precision, f"{whole_s:.1f} s",
             f"activation {reached:.3f} of its single requests' (first {len(grouped)})",
             "<= 20 s (bf16), <= 30 s (tf32); >= 0.95")]


def peer_rows(features, device, precision, layers, schedule):
    rows = []
    for layer in layers:
        seed_visualize(features, layer, 0, schedule)  # warm
        seed_s, _ = timing.timed(lambda: seed_visualize(features, layer, 0, schedule), device)
        visualize(features, layer, 0, schedule, precision=precision)
        ours_s, _ = timing.timed(lambda: visualize(features, layer, 0, schedule, precision=precision), device)
        rows.append((f"ours against the seed article's loop, layer {layer}", precision,
                     f"{ours_s:.3f} s against {seed_s:.3f} s", f"{ours_s / seed_s:.2f} of its time", ""))
    return rows


def group_rows(features, device, precision, layer, group_size, schedule):
    network = readout(features, [channel(layer, 0)]).shared
    exact = sum(slots_are_exact(network, group_size, side, device, precision) for side in schedule.sides())
    moved = visualize_group(features, layer, list(range(10, 10 + group_size - 1)) + [3], [5] * group_size,
                            group_size, schedule, precision)[-1]
    lonely = visualize_group(features, layer, [3], [5], group_size, schedule, precision)[0]
    same = torch.equal(moved.image, lonely.image)
    return [(f"groups of {group_size}: sides where the probe trusts them; filter 3 the same picture "
             "in the last slot and among stand-ins", precision, f"{exact} of {len(schedule.sides())}",
             "same picture" if same else f"differs by {(moved.image - lonely.image).abs().max().item():.3g}",
             "the same picture")]


def cuda_tests() -> str:
    found = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu"],
                           capture_output=True, text=True, cwd=in_process.ROOT, timeout=300)
    return (found.stdout.strip().splitlines() or ["no output"])[-1]


def main(argv=None):
    parser = section_parser("gpu_check", __doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layer", type=int, default=40)
    parser.add_argument("--filters", type=int, default=512, help="how many filters of the layer are served at once")
    parser.add_argument("--singles", type=int, default=8, help="single requests the whole layer is compared with")
    parser.add_argument("--precisions", nargs="+", default=["tf32", "bf16"])
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--peer-layers", type=int, nargs="+", default=[7, 40])
    parser.add_argument("--tiny", action="store_true", help="a 32 px, 2-scale, 2-step schedule instead of the article's")
    parser.add_argument("--no-tests", action="store_true", help="leave out tests/gpu")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    report = Report(args.out)
    if device.type == "cuda":
        report.say(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
                   f"cuDNN {torch.backends.cudnn.version()}, seeded random weights\n")
    state = random_state_dict(0)
    folder = in_process.model_dir(tempfile.mkdtemp(prefix="gpu-check-"), state,
                                  {"source": "random", "seed": 0, "trained": False})
    schedule = Schedule(size=32, upscaling_steps=2, opt_steps=2) if args.tiny else Schedule()
    table = report.table(["check", "precision", "figure", "beside it", "target"])
    for precision in args.precisions:
        for row in layer_rows(device, precision, folder, args.layer, args.filters, args.singles, schedule):
            table.row(*row)
    features = build_model(state, device).features
    for precision in args.precisions:
        for row in peer_rows(features, device, precision, args.peer_layers, schedule) + \
                group_rows(features, device, precision, args.layer, args.group_size, schedule):
            table.row(*row)
    if not args.no_tests:
        table.row("the CUDA tests (tests/gpu)", "", cuda_tests(), "", "all pass")
    report.say()
