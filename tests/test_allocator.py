import os
import platform
import subprocess
import sys

import pytest

from toysup import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# A short ``fit`` (n = 256, five instances, p = 0.02…0.4, the mix of chapter 1's sweep) in the main
# thread of a fresh process (pytest-xdist runs tests in another thread, whose malloc arena behaves
# differently); prints whether the settings took effect and the minor page faults per step.
PROBE = """
import resource, torch
from toysup.persian_rug import model, train
torch.set_num_threads(1)
cfg = model.AutoencoderConfig(256, 64, 5)
probs = [0.02, 0.05, 0.1, 0.2, 0.4]
train.fit(cfg, probs, train.TrainConfig(n_steps=5), progress=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
train.fit(cfg, probs, train.TrainConfig(n_steps=20), progress=False)
from toysup import allocator
print(allocator.retain_freed_memory(), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _probe(opt_out: str) -> tuple[bool, int]:
    env = os.environ | {allocator.OPT_OUT: opt_out}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True,
                         text=True).stdout.split()
    return out[-2] == "True", float(out[-1])


def test_the_setting_can_be_declined(monkeypatch):
    allocator.retain_freed_memory.cache_clear()
    monkeypatch.setenv(allocator.OPT_OUT, "1")
    try:
        assert allocator.retain_freed_memory() is False
    finally:
        allocator.retain_freed_memory.cache_clear()


@pytest.mark.skipif(not GLIBC, reason="mallopt's thresholds exist in glibc only")
def test_freed_blocks_are_reused_without_page_faults():
    """With the thresholds raised a training step reuses memory the process already has: 83 minor page
    faults per step against 2,212 with glibc's defaults, which hand the step's freed blocks back to the
    system (bench/train_throughput.py, section "allocator"). Asserted: at most a fifth of the defaults'."""
    took, faults = _probe("0")
    declined, default_faults = _probe("1")
    assert took and not declined
    assert faults < default_faults / 5, (faults, default_faults)
