"""Keeping freed memory in the process: glibc's malloc settings for the trainers' allocation pattern.

A training step allocates and frees the same few tensors of a few MiB (a block's (k, batch, n)
pre-activation is 4 MiB, ``train.BLOCK_FLOATS``). With glibc's defaults each of them is either mapped
afresh (above the mmap threshold) or handed back when the top of the heap is trimmed, so the next step
page-faults all of it in again, zeroing every 4 KiB page. ``retain_freed_memory`` raises both
thresholds once per process (mmap at glibc's largest, 32 MiB; trim at 1 GiB): freed blocks stay in
the heap and are reused. Numbers are unchanged; the process keeps up to 1 GiB of freed memory.

Measured (bench/train_throughput.py, section "allocator", one thread, r = 1/4, batch 1024): minor page
faults per step of ``fit`` fell from 2,212 to 83 at n = 256 (five instances) and from 3,761 to 47 at
n = 512 (four), and a step ran 1.24× and 1.31× as fast; 1.08× at n = 1024 and 1.01× at n = 2048, where
the products dominate. Set TOYSUP_GLIBC_MALLOC=1 to keep glibc's defaults (the benchmark's comparison
does); on other C libraries and systems nothing is changed.
"""
import ctypes
import functools
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # mallopt parameters, glibc <malloc.h>
MMAP_THRESHOLD = 32 * 2 ** 20                  # the largest glibc accepts on 64-bit systems
TRIM_THRESHOLD = 2 ** 30
OPT_OUT = "TOYSUP_GLIBC_MALLOC"


@functools.cache
def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (module docstring), once per process. True where both
    settings took effect; False with $TOYSUP_GLIBC_MALLOC=1, off Linux, or without glibc's mallopt."""
    if os.environ.get(OPT_OUT) == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):       # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
