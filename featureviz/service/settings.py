"""A worker's settings: each is a key of the model configuration's `handler` section
(handler/model-config.yaml), and its FEATUREVIZ_<NAME> environment variable wins over it. The
service declares its own below; each operation declares its own (`Operation.settings`), and reads
them when it is configured. A bad value stops the worker at its start, naming the setting."""
import math
import os
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[Any], Any]  # the raw value (text, or a YAML value) -> the setting; ValueError if bad
    expected: str  # what `parse` accepts, for the error message

    @property
    def variable(self) -> str:
        return f"FEATUREVIZ_{self.name.upper()}"


class Settings:
    """The values of a worker's settings: `config` (the model configuration's `handler` section),
    environment variables first."""

    def __init__(self, config: dict | None = None, environ=None):
        self.config = dict(config or {})
        self.environ = os.environ if environ is None else environ

    def __getitem__(self, setting: Setting):
        raw = self.environ.get(setting.variable)
        if raw in (None, ""):
            raw = self.config.get(setting.name)
        if raw is None or raw == "":
            raw = setting.default
        try:
            return setting.parse(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{setting.name} (or {setting.variable}) must be {setting.expected}, "
                             f"not {raw!r}") from None


def positive_int(raw) -> int:
    if isinstance(raw, bool) or not str(raw).strip().isdigit() or int(raw) < 1:
        raise ValueError(raw)
    return int(raw)


def positive_float(raw) -> float:
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(raw)
    return value


def non_negative_float(raw) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError(raw)
    return value


def auto_or(parse: Callable) -> Callable:
    """`auto`, or what `parse` takes."""
    return lambda raw: "auto" if str(raw).strip() == "auto" else parse(raw)


def boolean(raw) -> bool:
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise ValueError(raw)


def default_cache_dir(raw) -> str:
    return str(raw) or os.path.join(os.path.expanduser("~"), ".cache", "featureviz")


# The service's own: the result cache of the operations that keep one, shared by the workers.
CACHE_DIR = Setting("cache_dir", "", default_cache_dir, "a folder")
CACHE_MAX_MB = Setting("cache_max_mb", 1024, non_negative_float, "a number of MB >= 0 (0 turns the cache off)")
