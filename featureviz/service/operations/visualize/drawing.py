"""How a `visualize` image is drawn: lucent's fields `param`, `decorrelate`, `transforms`,
`objective` (with `x`, `y`), `negative`, `diversity` (with `diversity_weight`).

`param: pixel` is the article's multi-scale method (featureviz.optim.param.pixel), which takes
`objective` and `negative`; `param: fft` is lucent's (featureviz.optim.param.fft, random
transforms), which takes them all and brings lucent's schedule defaults (size 128, one scale of
512 steps at lr 0.05, no blur)."""
import dataclasses
from dataclasses import dataclass

from ....model.geometry import output_side
from ....optim.transforms import NETWORK_SIDE, network_side
from ...fields import Field
from ...refusals import BadRequest

PARAM = Field("param", str, "pixel", choices=("pixel", "fft"))
FIELDS = [
    PARAM,
    Field("decorrelate", bool, False),
    Field("transforms", str, "none", choices=("none", "standard")),
    Field("objective", str, "channel", choices=("channel", "neuron")),
    Field("x", int, None, 0, 4096, nullable=True),
    Field("y", int, None, 0, 4096, nullable=True),
    Field("negative", bool, False),
    Field("diversity", int, 1, 1, 8),
    Field("diversity_weight", float, 100.0, 0.0, 10_000.0),
]
# param fft: lucent's render_vis defaults where the article's differ, and room for its 512 steps
FFT_DEFAULTS = {"size": 128, "upscaling_steps": 1, "opt_steps": 512, "lr": 0.05, "blur": None,
                "decorrelate": True, "transforms": "standard"}
FFT_MAX_OPT_STEPS = 4096
# Compute limit of param fft: network pixels x steps x images, four times the default request's.
MAX_FFT_PIXEL_STEPS = 4 * NETWORK_SIDE ** 2 * FFT_DEFAULTS["opt_steps"]


@dataclass(frozen=True)
class Drawing:
    param: str = "pixel"
    decorrelate: bool = False
    transforms: str = "none"
    objective: str = "channel"  # or "neuron", or a list of terms in its canonical form (objective_field)
    x: int | None = None
    y: int | None = None
    negative: bool = False
    diversity: int = 1
    diversity_weight: float = 100.0

    def is_article(self) -> bool:
        """The article's own drawing: what every request without these fields gets."""
        return self == Drawing()

    def is_list(self) -> bool:
        return self.objective.startswith("[")


def fields_for(fields: dict, visualize_fields: list) -> list:
    """The visualize fields with the defaults of the request's `param`."""
    param = PARAM.parse(fields["param"]) if "param" in fields else PARAM.default
    if param == "pixel":
        return visualize_fields
    specs = []
    for spec in visualize_fields:
        if spec.name in FFT_DEFAULTS:
            spec = dataclasses.replace(spec, default=FFT_DEFAULTS[spec.name])
        if spec.name == "opt_steps":
            spec = dataclasses.replace(spec, high=FFT_MAX_OPT_STEPS)
        specs.append(spec)
    return specs


def parse_drawing(v: dict, features, layer: int, filters: int) -> Drawing:
    """The drawing of validated fields `v`, checked against the network and each other."""
    drawing = Drawing(*(v[f.name] for f in FIELDS))
    for axis in ("x", "y"):
        if v[axis] is not None and drawing.objective != "neuron":
            raise BadRequest(axis, "a position is for objective neuron; send objective: neuron, or no " + axis)
    if drawing.param == "pixel":
        for name, wrong in (("decorrelate", drawing.decorrelate), ("transforms", drawing.transforms != "none"),
                            ("diversity", drawing.diversity > 1), ("x", v["x"] is not None),
                            ("y", v["y"] is not None)):
            if wrong:
                raise BadRequest(name, "needs param: fft (the article's pixel method takes objective and negative, "
                                       "the neuron at the centre of each scale's output)")
        return drawing
    if v["upscaling_steps"] != 1:
        raise BadRequest("upscaling_steps", f"{v['upscaling_steps']}: param fft optimizes one scale; expected 1")
    if v["blur"] is not None:
        raise BadRequest("blur", "param fft does not blur; expected null")
    side = network_side(v["size"])
    grid = output_side(features, layer, side)
    for axis in ("x", "y"):
        if v[axis] is not None and v[axis] >= grid:
            raise BadRequest(axis, f"{v[axis]} is outside layer {layer}'s {grid}x{grid} output for a "
                                   f"{side} px input; expected 0..{grid - 1}")
    work = side * side * v["opt_steps"] * drawing.diversity
    if work > MAX_FFT_PIXEL_STEPS:
        field = "diversity" if drawing.diversity > 1 and work // drawing.diversity <= MAX_FFT_PIXEL_STEPS else "opt_steps"
        raise BadRequest(field, f"the request needs {work} pixel-steps (network pixels x opt_steps x diversity); "
                                f"at most {MAX_FFT_PIXEL_STEPS}")
    if work * filters > 4 * MAX_FFT_PIXEL_STEPS:
        raise BadRequest("filters", f"{filters} filters need {work * filters} pixel-steps; "
                                    f"at most {4 * MAX_FFT_PIXEL_STEPS}: send fewer filters")
    return drawing
