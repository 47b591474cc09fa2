"""glibc malloc settings for a process that runs the optimization on the CPU.

PyTorch allocates CPU tensors with malloc. glibc serves blocks over 32 MB (a 64-channel
activation at 408 px is 42 MB) with a fresh mmap each time and unmaps them when freed, so each
Adam step faults in, and the kernel zeroes, every page of its large activations again: millions
of page faults and seconds of system time for one visualize (docs/performance.md, "The allocator"). `keep_freed_memory` makes malloc reuse freed memory instead;
`release_freed_memory`, called between requests, gives it back to the system.
On a C library other than glibc both do nothing.
"""
import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
KEEP_FREE_BYTES = 2**31 - 1  # the top of the heap stays mapped until release_freed_memory


@functools.cache  # the worker releases memory after every batch: look the library up once
def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Large blocks from the heap rather than mmap, and the heap kept; True if applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREE_BYTES))


def release_freed_memory() -> bool:
    """Return the heap's free memory to the system; True if any was returned."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))
