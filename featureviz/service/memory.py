"""A worker's memory, as an operator sees it: resident (what the kernel counts against the
process, the weights' file pages it has read included) and anonymous (its own: the heap, tensors,
libraries' data), from /proc; and the ceiling past which the worker should be restarted
(docs/reliability.md, "A worker's memory")."""
from .metrics import Metric
from .settings import Setting, non_negative_float

# The service's own setting; 0 turns the ceiling off.
MEMORY_CEILING_MB = Setting("memory_ceiling_mb", 4096, non_negative_float, "a number of MB >= 0 (0: no ceiling)")


def memory_bytes() -> dict:
    """{"resident": bytes, "anonymous": bytes} of this process; empty where /proc is not there."""
    found = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "RssAnon"):
                    found["resident" if name == "VmRSS" else "anonymous"] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found


def memory_metrics(found: dict) -> list[Metric]:
    names = {"resident": "WorkerResidentMemoryBytes", "anonymous": "WorkerAnonymousMemoryBytes"}
    return [Metric(names[kind], value, "bytes", "gauge") for kind, value in found.items()]


def past_ceiling(found: dict, ceiling_mb: float) -> str | None:
    """Why the worker should restart, or None."""
    resident = found.get("resident", 0)
    if ceiling_mb and resident > ceiling_mb * 2**20:
        return (f"resident memory {resident / 2**20:.0f} MB is past the ceiling of {ceiling_mb:.0f} MB "
                f"({MEMORY_CEILING_MB.name}, {MEMORY_CEILING_MB.variable})")
    return None
