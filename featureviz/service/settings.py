"""A worker's settings: from the model configuration, FEATUREVIZ_* environment variables first."""
import os
from dataclasses import dataclass

from ..optim.precision import check as check_precision
from .operations.visualize.filter_sets import FiltersLimit


@dataclass(frozen=True)
class Settings:
    precision: str = "auto"  # fp32, tf32, bf16, or auto (optim.precision.default_precision)
    batch_images: int = 4  # visualize: single-filter images optimized together at most
    cache_dir: str = ""
    cache_max_mb: float = 1024  # 0 turns the result cache off
    group_size: str = "auto"  # visualize `filters`: images optimized in groups of this fixed shape
    max_filters: str = "auto"  # visualize `filters`: the compute limit (filter_sets.FiltersLimit)
    max_filters_work: str = "auto"

    @classmethod
    def read(cls, config: dict, environ=os.environ) -> "Settings":
        """From a model configuration's settings, FEATUREVIZ_* environment variables first."""
        precision = str(environ.get("FEATUREVIZ_PRECISION") or config.get("precision") or "auto")
        if precision != "auto":
            check_precision(precision)
        batch_images = environ.get("FEATUREVIZ_BATCH_IMAGES") or config.get("batch_images", 4)
        if not str(batch_images).isdigit() or int(batch_images) < 1:
            raise ValueError(f"batch_images must be a positive integer, not {batch_images!r}")
        cache_dir = (environ.get("FEATUREVIZ_CACHE_DIR") or config.get("cache_dir")
                     or os.path.join(os.path.expanduser("~"), ".cache", "featureviz"))
        group_size = str(environ.get("FEATUREVIZ_GROUP_SIZE") or config.get("group_size", "auto"))
        if group_size != "auto" and not (group_size.isdigit() and int(group_size) >= 1):
            raise ValueError(f"group_size must be a positive integer or auto, not {group_size!r}")
        limits = [str(environ.get(f"FEATUREVIZ_{name.upper()}") or config.get(name, "auto"))
                  for name in ("max_filters", "max_filters_work")]
        FiltersLimit.for_device("cpu", *limits)  # refuses a bad value at the worker's start
        return cls(precision, int(batch_images), cache_dir, float(config.get("cache_max_mb", 1024)), group_size,
                   *limits)
