"""`filters` of a visualize request: a list, a range ("0-63") or "all" of a layer's channels, and
the deployment's compute limit on how many images one request may ask for.

The limit is a setting that scales with the device (handler.max_filters, handler.max_filters_work):
a CPU worker takes at most 64 images and 8 default images' work in one request; a GPU worker takes
a whole layer of 512 at up to twice the default work each (docs/api.md, "Compute limits")."""
import json
import re
from dataclasses import dataclass

from ....model.geometry import output_channels
from ....optim.param.pixel import Schedule
from ...checks import check_channels
from ...fields import shown
from ...refusals import BadRequest

# The work of a default request: pixels x Adam steps summed over its scales.
DEFAULT_WORK = sum(s * s for s in Schedule().sides()) * Schedule().opt_steps
RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


@dataclass(frozen=True)
class FiltersLimit:
    """At most `images` filters in one request, needing at most `work` default requests' work."""
    images: int = 64
    work: float = 8

    @classmethod
    def for_device(cls, device_type: str, images="auto", work="auto") -> "FiltersLimit":
        """`auto`: the CPU's limit (this class's defaults) on a CPU, a whole layer on a GPU."""
        gpu = device_type == "cuda"
        return cls((512 if gpu else cls.images) if images == "auto" else images,
                   (1024 if gpu else cls.work) if work == "auto" else work)

    @property
    def pixel_steps(self) -> int:
        return int(self.work * DEFAULT_WORK)


@dataclass(frozen=True)
class FilterSet:
    """What `filters` asked for before the layer is known: a list, or a range (`last` None: all)."""
    listed: tuple = ()
    first: int = 0
    last: int | None = None
    text: str = ""  # the range as sent, for messages

    def filters(self, features, layer: int) -> tuple:
        if self.listed:
            return self.listed
        last = output_channels(features, layer) - 1 if self.last is None else self.last
        check_channels(features, layer, [last], "filters")  # before a range of a billion is made
        return tuple(range(self.first, last + 1))


def parse_filter_set(raw, limit: FiltersLimit) -> FilterSet:
    """`filters` as a JSON list of integers, or text: "3,5,9", "[3, 5, 9]", a range "0-63" or "all"."""
    accepted = f"a list of 1 to {limit.images} different integers, e.g. [3, 5, 9] or \"3,5,9\""
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() == "all":
            return FilterSet(text="all")
        span = RANGE.match(text)
        if span:
            first, last = int(span[1]), int(span[2])
            if first > last:
                raise BadRequest("filters", f"{text[:40]!r} is an empty range; expected \"first-last\", first <= last")
            return FilterSet(first=first, last=last, text=text)
        try:
            raw = json.loads(text) if text.startswith("[") else [int(part) for part in text.split(",")]
        except (ValueError, RecursionError):
            raise BadRequest("filters", f"{text[:40]!r} is not {accepted}, a range \"0-63\" or \"all\"") from None
    if (not isinstance(raw, list) or not 1 <= len(raw) <= limit.images
            or any(isinstance(f, bool) or not isinstance(f, int) or f < 0 for f in raw)
            or len(set(raw)) != len(raw)):
        raise BadRequest("filters", f"{shown(raw, 60)} is not {accepted}")
    return FilterSet(listed=tuple(raw))


def check_limit(asked: FilterSet, filters: tuple, layer: int, work_each: int, limit: FiltersLimit):
    """A range or `all` within the limit's count; every form within its work."""
    if not asked.listed and len(filters) > limit.images:
        raise BadRequest("filters", f"{asked.text!r} is {len(filters)} filters of layer {layer}; this deployment's "
                                    f"compute limit takes at most {limit.images} in one request (the setting "
                                    "max_filters: its default is 64 on a CPU, a whole layer on a GPU): "
                                    f"ask for a range of at most {limit.images}, such as \"0-{limit.images - 1}\"")
    if work_each * len(filters) > limit.pixel_steps:
        raise BadRequest("filters", f"{len(filters)} filters need {work_each * len(filters)} pixel-steps; "
                                    f"at most {limit.pixel_steps}: send fewer filters")
