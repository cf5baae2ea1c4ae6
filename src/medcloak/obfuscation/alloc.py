"""Keep freed memory in the process instead of handing it back to the kernel after every frame.

Obfuscating a frame allocates and frees the same few megabytes again and again (a 256 px VAE
makes 4 MiB activations; a 512 px frame is 1 MiB as float32). glibc's ``malloc`` serves blocks
this size with ``mmap`` or trims them off the heap when they are freed, so the next frame's
buffers come back as fresh pages and every first touch is a page fault: measured on the 2-core
benchmark machine, the PReLU after the VAE's last transposed convolution took 2.05 ms in the
network and 0.09 ms on a warm buffer of the same shape, and the whole 256 px forward pass went
from 17.4 ms to 13.0 ms per frame with :func:`keep_freed_memory` (one thread, same bits).

:func:`keep_freed_memory` raises glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` (see
``mallopt(3)``) so blocks up to :data:`MMAP_THRESHOLD` come from the heap and up to
:data:`TRIM_THRESHOLD` of free heap stays mapped. It changes no arithmetic (outputs are byte for
byte those without it) and only where it is called: every process that obfuscates
(:func:`medcloak.obfuscation.batch_worker.init_worker`, so also the caller's own process when it
obfuscates in process, for the rest of its life). The cost is resident memory a process keeps
after a peak, at most the trim threshold above what it uses. On a C library other than glibc it
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

MMAP_THRESHOLD = 64 << 20  #: blocks larger than this still come from mmap (huge multi-frame stacks)
TRIM_THRESHOLD = 256 << 20  #: free heap kept mapped before glibc trims it
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
_DONE: list[bool] = []


def keep_freed_memory() -> bool:
    """Set the two thresholds once per process; True if glibc took them (False elsewhere)."""
    if _DONE:
        return _DONE[0]
    ok = False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to tune
        mallopt = None
    if mallopt is not None:
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _DONE.append(ok)
    return ok
