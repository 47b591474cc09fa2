"""Which module makes an image depend on its neighbours or its slot in a group of G (what groups of a
fixed shape must not: featureviz.optim.groups, "Groups of a fixed shape" in docs/performance.md).

For each side, the network the engine runs for a channel of `--layer` (model.lean's trunk, as
featureviz.optim.readout builds it) is run module by module, forward and backward, in the engine's
arithmetic, on one image in the first slot of a group beside other images, in the last slot beside
others, and in a group of its own copies; each module's output and the gradient flowing into it are
compared, for that image, with its copies' first slot. The table gives the largest absolute
differences, module by module; `exact` says whether featureviz.optim.batching's probe trusts the
group at that side (where it does not, the engine runs the group's images one by one there).

    python -m bench slots [--device cuda] [--precision tf32] [--group-size 16] [--layer 40] [--sides 56 67]
"""
import torch

from featureviz.model import weights
from featureviz.model.network import build_model
from featureviz.optim import precision as arithmetic
from featureviz.optim.batching import slots_are_exact
from featureviz.optim.objectives import channel
from featureviz.optim.param.pixel import Schedule
from featureviz.optim.readout import readout

from .cli import section_parser
from .table import Report


def traced(modules, images, upstream, precision):
    """Each module's output and the gradient into it, for a batch run module by module."""
    device = images.device
    outputs = []
    with torch.enable_grad(), arithmetic.kernels(precision, device):
        x = images.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        with arithmetic.autocast(precision, device):
            y = x
            for module in modules:
                y = module(y)
                y.retain_grad()
                outputs.append(y)
        y.backward(upstream(y).contiguous(memory_format=torch.channels_last))
    return [(out.detach(), out.grad) for out in outputs]


def slot_differences(network, g: int, side: int, device, precision: str, seed: int = 0) -> list:
    """Per module: (forward, gradient) largest differences of one image in the first and the last
    slot beside others from the image among its copies."""
    generator = torch.Generator().manual_seed(seed)
    one, neighbours, others = (torch.randn(k, 3, side, side, generator=generator).to(device) for k in (1, g - 1, g - 1))
    drawn = {}

    def upstream_for(order):
        def upstream(y):
            if not drawn:
                drawn.update({part: torch.randn(k, *y.shape[1:], generator=generator).to(device, y.dtype)
                              for part, k in (("one", 1), ("neighbours", g - 1), ("others", g - 1))})
            return torch.cat([drawn[part] for part in order])
        return upstream

    parts = {"one": one, "neighbours": neighbours, "others": others}
    runs = {}
    for name, order, slot in (("copies", ("one",) * g, 0), ("first", ("one", "neighbours"), 0),
                              ("last", ("others", "one"), g - 1)):
        found = traced(list(network), torch.cat([parts[p] for p in order]), upstream_for(order), precision)
        runs[name] = [(out[slot].float(), grad[slot].float()) for out, grad in found]
    return [tuple(max((runs[placing][m][kind] - runs["copies"][m][kind]).abs().max().item()
                      for placing in ("first", "last")) for kind in (0, 1))
            for m in range(len(runs["copies"]))]


def main(argv=None):
    parser = section_parser("slots", __doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="tf32", choices=arithmetic.PRECISIONS)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--layer", type=int, default=40)
    parser.add_argument("--sides", type=int, nargs="+", default=Schedule().sides())
    parser.add_argument("--weights", default="random")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    features = build_model(weights.resolve(args.weights).state_dict(), device).features
    network = readout(features, [channel(args.layer, 0)]).shared
    report = Report(args.out)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    report.say(f"{where}, torch {torch.__version__}, {args.precision}, layer {args.layer}, G = {args.group_size}\n")
    table = report.table(["side", "exact", "first module to differ", "module", "forward", "gradient into it"])
    for side in args.sides:
        exact = slots_are_exact(network, args.group_size, side, device, args.precision)
        differences = slot_differences(network, args.group_size, side, device, args.precision)
        differing = [m for m, (forward, gradient) in enumerate(differences) if forward or gradient]
        first = f"{differing[0]}: {type(network[differing[0]]).__name__}" if differing else "none"
        for m in differing or [len(differences) - 1]:
            table.row(side, exact, first, f"{m}: {type(network[m]).__name__}",
                      f"{differences[m][0]:.2g}", f"{differences[m][1]:.2g}")
