"""visualize's `objective`: a kind (`channel`, `neuron`) of the request's `layer` and `filter`, or a
list of terms whose weighted sum the image raises (lucent's objectives that add up):

    {"channel": [layer, filter]}            {"neuron": [layer, filter, x, y]}
    {"direction": [layer, [v_0, ..., v_C-1]]}   {"diversity": layer}

each with an optional "weight" (default 1; a diversity term's: diversity_weight). A list is checked
term by term against the network and the request's drawing, each refusal naming `objective[i]`;
its canonical form (the terms as sent, weights filled in, keys sorted, compact JSON) names it in
the PNG text and the cache key. `objective_of` gives the featureviz.optim Objective a request raises.
"""
import json
import math

from ....model.geometry import output_channels, output_side
from ....model.network import LAYER_COUNT
from ....optim import objectives
from ....optim.transforms import network_side
from ...fields import shown
from ...refusals import BadRequest

MAX_TERMS = 8
KINDS = {"channel": "[layer, filter]", "neuron": "[layer, filter, x, y]",
         "direction": "[layer, [v_0, ..., v_C-1]]", "diversity": "layer"}
REFUSED_BESIDE_A_LIST = ("layer", "filter", "filters", "negative")


def is_list(raw) -> bool:
    """Is the field's raw value a list of terms (JSON, or its text from a form or gRPC)?"""
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8", errors="replace")
    return isinstance(raw, list) or (isinstance(raw, str) and raw.lstrip().startswith("["))


def parse_terms(fields: dict) -> list[dict]:
    """The list as sent, each term's shape checked (the network's checks come in `canonical`)."""
    for name in REFUSED_BESIDE_A_LIST:
        if name in fields:
            raise BadRequest(name, "an objective list names its layers and filters in its terms; send no "
                                   f"{name} beside it (a negative weight subtracts a term)")
    raw = fields["objective"]
    if isinstance(raw, (bytes, bytearray, str)):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest("objective", "not a JSON list of terms, e.g. [{\"channel\": [40, 3]}]") from None
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TERMS:
        raise BadRequest("objective", f"expected a list of 1 to {MAX_TERMS} terms, e.g. [{{\"channel\": [40, 3]}}]")
    for i, term in enumerate(raw):
        _check_shape(f"objective[{i}]", term)
    return raw


def _check_shape(name: str, term):
    expected = "; expected one of " + ", ".join(f'{{"{k}": {v}}}' for k, v in KINDS.items()) + \
               ", with an optional \"weight\""
    if not isinstance(term, dict):
        raise BadRequest(name, f"{shown(term)} is not a term{expected}")
    kinds = [key for key in term if key != "weight"]
    if len(kinds) != 1 or kinds[0] not in KINDS:
        raise BadRequest(name, f"{', '.join(map(repr, kinds)) or 'no kind'} is not a kind of term{expected}")
    kind, value = kinds[0], term[kinds[0]]
    if "weight" in term and not _finite(term["weight"]):
        raise BadRequest(name, f"weight {shown(term['weight'])} is not a finite number")
    if kind == "diversity":
        good = _integer(value)
    elif kind == "direction":
        good = (isinstance(value, list) and len(value) == 2 and _integer(value[0]) and isinstance(value[1], list)
                and value[1] and all(_finite(v) for v in value[1]))
    else:
        good = isinstance(value, list) and len(value) == (2 if kind == "channel" else 4) and all(map(_integer, value))
    if not good:
        raise BadRequest(name, f"{kind} takes {KINDS[kind]} (integers >= 0; a direction's numbers finite), "
                               f"not {shown(value, 60)}")


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def canonical(terms: list[dict], v: dict, features) -> str:
    """The terms checked against the network and the request's drawing fields `v`, weights filled in."""
    filled = []
    for i, term in enumerate(terms):
        name, (kind, value) = f"objective[{i}]", next((k, x) for k, x in term.items() if k != "weight")
        layer = value if kind == "diversity" else value[0]
        if layer >= LAYER_COUNT:
            raise BadRequest(name, f"layer {layer} is out of range; expected 0..{LAYER_COUNT - 1}")
        channels = output_channels(features, layer)
        if kind in ("channel", "neuron") and value[1] >= channels:
            raise BadRequest(name, f"filter {value[1]} is out of range; layer {layer} has {channels} channels")
        if kind == "direction" and len(value[1]) != channels:
            raise BadRequest(name, f"the direction has {len(value[1])} numbers; layer {layer} has {channels} channels")
        if kind in ("neuron", "diversity") and v["param"] != "fft":
            raise BadRequest(name, f"a {kind} term needs param: fft (the article's pixel method changes the "
                                   "output grid at every scale)")
        if kind == "neuron":
            side = network_side(v["size"])
            grid = output_side(features, layer, side)
            if max(value[2], value[3]) >= grid:
                raise BadRequest(name, f"({value[2]}, {value[3]}) is outside layer {layer}'s {grid}x{grid} output "
                                       f"for a {side} px input; expected x and y in 0..{grid - 1}")
        if kind == "diversity" and v["diversity"] < 2:
            raise BadRequest(name, "a diversity term needs images drawn together: send diversity of 2 or more")
        filled.append({**term, "weight": term.get("weight", v["diversity_weight"] if kind == "diversity" else 1)})
    if v["diversity"] > 1 and not any("diversity" in term for term in terms):
        raise BadRequest("diversity", "with an objective list, images drawn together come with a "
                                      "{\"diversity\": layer} term; add one, or send diversity: 1")
    return json.dumps(filled, sort_keys=True, separators=(",", ":"))


def deepest_layer(listed: str) -> int:
    return max(_term(term)[1] for term in json.loads(listed))


def _term(term: dict) -> tuple:
    """(kind, layer, the rest) of a canonical term."""
    kind, value = next((k, x) for k, x in term.items() if k != "weight")
    return (kind, value, ()) if kind == "diversity" else (kind, value[0], value[1:])


def objective_of(drawing, layer: int | None, filter: int | None) -> objectives.Objective:
    """What a request raises: its list's weighted terms, or its kind of `filter` at `layer` (minus
    it, where negative), less the Gram similarity of images drawn together (diversity > 1)."""
    if drawing.objective.startswith("["):
        total = None
        for term in json.loads(drawing.objective):
            kind, at, rest = _term(term)
            made = {"channel": objectives.channel, "neuron": objectives.neuron, "direction": objectives.direction,
                    "diversity": objectives.diversity}[kind](at, *rest) * term["weight"]
            total = made if total is None else total + made
        return total
    made = objectives.neuron(layer, filter, drawing.x, drawing.y) if drawing.objective == "neuron" else \
        objectives.channel(layer, filter)
    if drawing.negative:
        made = -made
    if drawing.diversity > 1:
        made = made + drawing.diversity_weight * objectives.diversity(layer)
    return made
