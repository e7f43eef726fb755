import platform
import resource
import sys

import pytest
import torch

from toysup import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.fixture
def fresh():
    allocator.retain_freed_memory.cache_clear()
    yield allocator.retain_freed_memory
    allocator.retain_freed_memory.cache_clear()


def test_the_setting_can_be_declined(fresh, monkeypatch):
    monkeypatch.setenv(allocator.OPT_OUT, "1")
    assert fresh() is False


@pytest.mark.skipif(not GLIBC, reason="mallopt's thresholds exist in glibc only")
def test_freed_blocks_are_reused_without_page_faults(fresh, monkeypatch):
    """With the thresholds raised, allocating and freeing the same 8 MiB block (2,048 pages) twenty
    times touches memory the process already has: 2,048 minor page faults here, against about 10,000
    with glibc's defaults, which hand freed blocks back to the system (the bound lies between)."""
    monkeypatch.delenv(allocator.OPT_OUT, raising=False)
    assert fresh() is True
    torch.ones(2 ** 21).sum()                           # the block is in the heap from here on
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.ones(2 ** 21).sum()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 20 * 2048 / 10, f"{faults} minor page faults for 20 blocks of 2,048 pages"
