"""Which products ``model.loss_and_grads`` takes, measured once per machine and block shape.

Two choices of the backward pass depend on the CPU as much as on the shapes:

* **output**: the products gᵀh and g·W_out as two bmm or from g's non-zero entries
  (``SparseBatch.of``, then embedding_bag), f the fraction of g that is non-zero;
* **transpose**: on the sparse input path, the encoder's gradient diag(x)ᵀ·∂h from the batch's entries
  sorted by feature (``SparseBatch.t_times``) or as one bmm on the dense x, d the batch's density.

Each is faster from the entries below a crossover (f* or d*) that grows with m. Measured on one
thread, batch 1024, torch 2.13 (bench/train_throughput.py, sections "transpose" and "throughput"):

* AMD EPYC: output entries win up to f ≈ 0.1 at m = 128 and f ≈ 0.2 at m = 256 and 512 (n = 2048,
  m = 512: 30 against 84 ms for the two products at f = 0.08); the transposed entries win up to
  d ≈ 0.1 already at m = 25–64 (n = 256, m = 64, d = 0.05: 1.2 against 3.3 ms);
* Intel Xeon (matmul 211 GFLOP/s): output entries only below f ≈ 0.06 at m = 256…1024; transposed
  entries below d ≈ 0.01 at m ≤ 16, 0.05 at m = 51–64 and 0.1 at m = 204–512.

A fixed rule therefore loses on one of the two (the Xeon's rule cost the EPYC 20 % of a step at n = 256,
m = 64, p = 0.045), and so does a rule measured at one shape: the entries' fixed costs (counting,
sorting, their index arithmetic) weigh more in small blocks (a crossover measured at n = 1024 and
applied at n = 64 or 128, one instance, made a step 15-20 % slower). ``thresholds`` therefore gives f*
and d* for each block shape (k, batch, n, m) that trains: the first time a shape is met on a machine,
``measure`` times both paths on random data of that shape at two values of f or d (the entries' time is
linear in them, the bmm's constant), about 0.1-2 s, and stores the crossings in
``outputs/cache/calibration/``, one file per CPU, torch version, thread count, device and version of
this code; every later process on the machine reads them back, so every process takes the same paths
and a model's numbers do not depend on which process trained it. Both paths give the same gradients to
float32 rounding.
"""
import functools
import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from toysup import storage
from toysup.paths import OUTPUTS, shown, source_digest
from toysup.persian_rug.data import SparseBatch

ROOT = OUTPUTS / "cache" / "calibration"
PROBE_FRACTIONS = (0.04, 0.16)   # f of the output measurement
PROBE_DENSITIES = (0.03, 0.15)   # d of the transpose measurement
MAX_CROSSOVER = 0.5          # never from the entries above this fraction (a ReLU model starts near 0.5)
REPEATS = 5


@dataclass(frozen=True)
class Thresholds:
    """Below these the backward products take the entries: ``output`` f* (of g's non-zero fraction),
    ``transpose`` d* (of the batch's density), each in [0, MAX_CROSSOVER]."""

    output: float
    transpose: float


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


def _crossing(levels: tuple[float, float], entries: Callable[[float], object],
              dense: Callable[[float], object], device: torch.device) -> float:
    """Where the entries' time, linear in the level (f or d) through its times at ``levels``, meets
    the bmm's (the faster of its two times), clipped to [0, MAX_CROSSOVER]."""
    sparse_times = [_seconds(lambda: entries(level), device) for level in levels]
    dense_time = min(_seconds(lambda: dense(level), device) for level in levels)
    (l0, l1), (s0, s1) = levels, sparse_times
    slope = (s1 - s0) / (l1 - l0)
    if slope <= 0:
        return MAX_CROSSOVER if s0 < dense_time else 0.0
    return min(max(l0 + (dense_time - s0) / slope, 0.0), MAX_CROSSOVER)


def _random(shape: tuple[int, ...], level: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """A tensor of ``shape`` whose entries are non-zero (uniform on (0, 1)) with probability ``level``."""
    on = torch.rand(shape, generator=gen, device=device) < level
    return torch.where(on, torch.rand(shape, generator=gen, device=device), 0.0)


def _output_crossover(shape: tuple[int, int, int, int], device: torch.device, gen: torch.Generator) -> float:
    """f* for blocks of shape (k, batch, n, m) (module docstring)."""
    k, batch, n, m = shape
    h = torch.rand(k, batch, m, generator=gen, device=device)
    decoder = torch.rand(k, n, m, generator=gen, device=device)
    g = {f: _random((k, batch, n), f, gen, device) for f in PROBE_FRACTIONS}

    def entries(f: float) -> object:
        active = SparseBatch.of(g[f])
        return active.t_times(h.view(k * batch, m)), active.times(decoder.view(k * n, m))

    def dense(f: float) -> object:
        return torch.bmm(g[f].transpose(1, 2), h), torch.bmm(g[f], decoder)
    return _crossing(PROBE_FRACTIONS, entries, dense, device)


def _transpose_crossover(shape: tuple[int, int, int, int], device: torch.device, gen: torch.Generator) -> float:
    """d* for blocks of shape (k, batch, n, m) (module docstring). The entries' rows (``block_rows``)
    are built beforehand, as the forward pass builds them in training; each timed call gets a batch
    of its own, since a batch keeps its sorted entries."""
    k, batch, n, m = shape
    grad_h = torch.rand(k * batch, m, generator=gen, device=device)
    batches = {}
    for d in PROBE_DENSITIES:
        batches[d] = [SparseBatch.of(_random((k, batch, n), d, gen, device)) for _ in range(REPEATS + 1)]
        for each in batches[d]:
            each.block_rows                                       # noqa: B018 (a cached property)
    left = {d: iter(pool) for d, pool in batches.items()}

    def entries(d: float) -> object:
        return next(left[d]).t_times(grad_h)

    def dense(d: float) -> object:
        x = batches[d][0].dense().transpose(0, 1)
        return torch.bmm(x.transpose(1, 2), grad_h.view(k, batch, m))
    return _crossing(PROBE_DENSITIES, entries, dense, device)


def measure(device: torch.device, shape: tuple[int, int, int, int]) -> dict[str, float]:
    """f* and d* for blocks of shape (k, batch, n, m) (module docstring): {"output", "transpose"}."""
    gen = torch.Generator(device=device).manual_seed(0)
    return {"output": _output_crossover(shape, device, gen), "transpose": _transpose_crossover(shape, device, gen)}


def _path(device: torch.device, root: Path) -> Path:
    """The file holding this machine's measurements (see ``_key``)."""
    key = _key(device)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return root / f"{key['device']}-{key['threads']}-{digest}.json"


@functools.cache
def thresholds(device: torch.device, n_instances: int, batch: int, n_features: int, d_hidden: int,
               root: Path = ROOT) -> Thresholds:
    """f* and d* for blocks of shape (k, batch, n, m) on this machine, device and thread count: read
    from ``root`` when measured before, else measured now and added to the file (under its lock:
    concurrent processes measure a shape once). Prints one line when it measures."""
    shape = (n_instances, batch, n_features, d_hidden)
    name = ",".join(map(str, shape))
    path = _path(device, root)
    with storage.locked(path):
        stored = json.loads(path.read_text()) if path.exists() else {**_key(device), "shapes": {}}
        measured = name not in stored["shapes"]
        if measured:
            stored["shapes"][name] = measure(device, shape)
            storage.write_text(path, json.dumps(stored, indent=1, sort_keys=True))
    values = stored["shapes"][name]
    if measured:
        print(f"backward products of (k, batch, n, m) = ({', '.join(map(str, shape))}) from the entries "
              f"below f = {values['output']:.3f} and d = {values['transpose']:.3f} (measured now, stored in "
              f"{shown(path)})")
    return Thresholds(float(values["output"]), float(values["transpose"]))
