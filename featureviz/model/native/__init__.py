"""C kernels for the CPU, compiled on first use by the machine's C compiler for its own processor.

A kernel is a plain C file beside this one, built into a shared library with `cc -O3
-march=native` and loaded with ctypes: no PyTorch headers, so it builds in a second. The library
is kept in a cache folder, named by a hash of the source, the compiler and the processor's flags,
and written under a temporary name then renamed, so that workers starting together can share it.
Where there is no compiler, or it fails, `load` returns None and the caller uses PyTorch's ops.

An image built with no compiler at run time (Dockerfile) carries libraries built beforehand in
FEATUREVIZ_NATIVE_PREBUILT: `<name>-<first 16 hex of the source's sha256>-<level>.so` for the x86-64
microarchitecture levels; `load` takes the highest level this processor runs, before any compiler.
"""
import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC"]
DISABLE = "FEATUREVIZ_NATIVE"  # set to 0 to use PyTorch's ops only
PREBUILT = "FEATUREVIZ_NATIVE_PREBUILT"
# x86-64 microarchitecture levels, highest first, with the /proc/cpuinfo flags each needs beyond
# the one below it (the x86-64 psABI's list; gcc's -march=x86-64-vN).
LEVELS = (
    ("x86-64-v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
    ("x86-64-v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
    ("x86-64-v2", {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}),
)

log = logging.getLogger(__name__)
_loaded = {}


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "featureviz-native")


def _processor_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def processor_levels(flags: str | None = None) -> list[str]:
    """The microarchitecture levels this processor runs, highest first."""
    have = set((flags if flags is not None else _processor_flags()).split())
    levels = []
    for level, needs in reversed(LEVELS):
        if not needs <= have:
            break
        levels.insert(0, level)
    return levels


def source_digest(name: str) -> str:
    with open(os.path.join(HERE, f"{name}.c"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def prebuilt(name: str) -> str | None:
    """The library built beforehand for this source and the highest level this processor runs."""
    folder = os.environ.get(PREBUILT)
    if not folder:
        return None
    digest = source_digest(name)
    for level in processor_levels():
        path = os.path.join(folder, f"{name}-{digest}-{level}.so")
        if os.path.exists(path):
            return path
    return None


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(name: str) -> str | None:
    library = prebuilt(name)
    if library:
        return library
    compiler = _compiler()
    if compiler is None:
        log.warning("no C compiler: %s runs on PyTorch's ops", name)
        return None
    source = os.path.join(HERE, f"{name}.c")
    with open(source, "rb") as f:
        code = f.read()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(b"\0".join(s.encode() if isinstance(s, str) else s
                                    for s in (code, compiler, version, " ".join(FLAGS), _processor_flags())))
    folder = cache_dir()
    library = os.path.join(folder, f"{name}-{key.hexdigest()[:16]}.so")
    if os.path.exists(library):
        return library
    os.makedirs(folder, exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so", dir=folder)
    os.close(fd)
    done = subprocess.run([compiler, *FLAGS, source, "-o", partial], capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(partial)
        log.warning("%s did not compile, so it runs on PyTorch's ops: %s", name, done.stderr.strip()[-2000:])
        return None
    os.replace(partial, library)
    return library


def load(name: str):
    """The ctypes library of `name`.c, built if needed; None where it cannot be (or is disabled)."""
    if os.environ.get(DISABLE, "1") == "0":
        return None
    if name not in _loaded:
        try:
            library = _build(name)
            _loaded[name] = ctypes.CDLL(library) if library else None
        except OSError as error:
            log.warning("%s could not be built or loaded, so it runs on PyTorch's ops: %s", name, error)
            _loaded[name] = None
    return _loaded[name]
