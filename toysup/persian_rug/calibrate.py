"""Which backward products ``model.loss_and_grads`` takes, measured once per machine.

The backward products gᵀh and g·W_out of a ReLU model run either as two bmm or from g's non-zero
entries (``SparseBatch.of``, then embedding_bag); f is the fraction of g that is non-zero. Which is
faster depends on the CPU. Measured on one thread, batch 1024, m = n/4, torch 2.13, g with random
support (EPYC: a probe of the two products, 2026-12-02; Xeon: a probe of whole ``loss_and_grads``
calls with the bias set for a given f, 2026-12-03; both scratch scripts, not kept):

* AMD EPYC: the entries win up to f ≈ 0.1 at m = 128 and f ≈ 0.2 at m = 256 and 512 (n = 2048,
  m = 512: 30 against 84 ms for the two products at f = 0.08);
* Intel Xeon (matmul 211 GFLOP/s): only below f ≈ 0.06, at m = 256, 512 and 1024 alike (n = 2048,
  m = 512, the whole ``loss_and_grads``: 53 against 45 ms at f = 0.08, 41 against 47 at f = 0.04).

A fixed threshold therefore loses on one of the two. ``crossover`` measures the f below which the
entries are faster, at n = 1024, m = 256 (``PROBE``), from the products' times at two values of f
(linear in f) and the dense time, and stores it in ``outputs/cache/calibration/`` keyed by the CPU,
torch's version, the thread count, the device and this code; every later process on the machine
reads it back, so every process takes the same path and a model's numbers do not depend on which
process trained it. Both paths give the same gradients to float32 rounding.
"""
import functools
import hashlib
import json
import platform
import time
from pathlib import Path

import torch

from toysup import storage
from toysup.paths import OUTPUTS, shown, source_digest
from toysup.persian_rug.data import SparseBatch

ROOT = OUTPUTS / "cache" / "calibration"
PROBE = (1024, 256, 1024)    # n, m, batch of the measurement
PROBE_FRACTIONS = (0.04, 0.16)
MAX_CROSSOVER = 0.5          # never from the entries above this fraction (a ReLU model starts near 0.5)
REPEATS = 5


def _cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _key(device: torch.device) -> dict:
    """What the measurement depends on."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {"device": device.type, "name": name, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "source": source_digest(parts=("persian_rug/data.py",
                                                                      "persian_rug/calibrate.py"))}


def _seconds(run, device: torch.device) -> float:
    """The fastest of ``REPEATS`` calls of ``run`` after a warm-up call."""
    best = float("inf")
    for repeat in range(REPEATS + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if repeat:
            best = min(best, time.perf_counter() - start)
    return best


def measure(device: torch.device) -> float:
    """The fraction f of non-zero g below which the two backward products are faster from g's
    entries than as two bmm, at the shape ``PROBE``, clipped to [0, MAX_CROSSOVER]."""
    n, m, batch = PROBE
    gen = torch.Generator(device=device).manual_seed(0)
    h = torch.rand(1, batch, m, generator=gen, device=device)
    decoder = torch.rand(1, n, m, generator=gen, device=device)

    def entries(g: torch.Tensor) -> object:
        active = SparseBatch.of(g)
        return active.t_times(h.view(batch, m)), active.times(decoder.view(n, m))

    def dense(g: torch.Tensor) -> object:
        return torch.bmm(g.transpose(1, 2), h), torch.bmm(g, decoder)

    sparse_times, dense_times = [], []
    for f in PROBE_FRACTIONS:
        on = torch.rand(1, batch, n, generator=gen, device=device) < f
        g = torch.where(on, torch.rand(1, batch, n, generator=gen, device=device), 0.0)
        sparse_times.append(_seconds(lambda: entries(g), device))
        dense_times.append(_seconds(lambda: dense(g), device))
    (f0, f1), (s0, s1) = PROBE_FRACTIONS, sparse_times
    slope = (s1 - s0) / (f1 - f0)
    if slope <= 0:
        return MAX_CROSSOVER if s0 < min(dense_times) else 0.0
    return min(max(f0 + (min(dense_times) - s0) / slope, 0.0), MAX_CROSSOVER)


@functools.cache
def crossover(device: torch.device, root: Path = ROOT) -> float:
    """``measure``'s fraction for this machine, device and thread count: read from ``root`` when it
    was measured before, else measured and stored (under a lock: concurrent processes measure once).
    Prints one line saying which."""
    key = _key(device)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = root / f"{key['device']}-{key['threads']}-{digest}.json"
    with storage.locked(path):
        if path.exists():
            stored = json.loads(path.read_text())
            how = "read from"
        else:
            stored = {**key, "crossover": measure(device)}
            storage.write_text(path, json.dumps(stored, indent=1, sort_keys=True))
            how = "measured now, stored in"
    value = float(stored["crossover"])
    print(f"backward products from g's non-zero entries below a fraction f = {value:.3f} "
          f"({how} {shown(path)})")
    return value
