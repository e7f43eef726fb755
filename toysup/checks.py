"""Argument checks shared by every module: each raises ValueError naming the parameter, its value
and the allowed range, so a reader who mistypes a keyword sees what to change."""
import math
from collections.abc import Sequence
from numbers import Integral, Real

import torch
from torch import Tensor

SEED_MAX = 2**32 - 1   # seeds are integers in [0, SEED_MAX]: numpy's and torch's ranges both hold them


def positive_int(name: str, value: int, *, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int in [1, maximum]; else raise ValueError naming ``name``."""
    upper = "inf" if maximum is None else str(maximum)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (
        maximum is not None and value > maximum
    ):
        raise ValueError(f"{name} must be an integer in [1, {upper}], got {value!r}")
    return value


def probabilities(name: str, values: float | Sequence[float] | Tensor) -> Tensor:
    """Feature probabilities as a float64 tensor of shape (k,); each must lie in (0, 1]."""
    p = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if p.numel() == 0:
        raise ValueError(f"{name} must hold at least one value in (0, 1], got an empty sequence")
    bad = ~((p > 0) & (p <= 1))
    if bad.any():
        raise ValueError(f"{name} must lie in (0, 1], got {p[bad][0].item()!r}")
    return p


def unit_interval(name: str, value: float, *, closed_low: bool = False) -> float:
    """Return a float in (0, 1] (or [0, 1] with ``closed_low``); else raise ValueError."""
    low_ok = value >= 0 if closed_low else value > 0
    if not (low_ok and value <= 1):
        interval = "[0, 1]" if closed_low else "(0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return float(value)


def device(value: str | torch.device) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' as a torch.device; CUDA only if this machine has it."""
    try:
        dev = torch.device(value)
    except RuntimeError as err:
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {value!r}") from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {value!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {value!r} asked for, but torch sees no CUDA device here; use 'cpu'")
    return dev


def seed(name: str, value: int) -> int:
    """Return ``value`` as an int if it is an integer (Python or numpy, not bool) in [0, SEED_MAX];
    else raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or not 0 <= value <= SEED_MAX:
        raise ValueError(f"{name} must be an integer in [0, {SEED_MAX}], got {value!r}")
    return int(value)


def finite_float(name: str, value: float, *, low: float = -math.inf, high: float = math.inf,
                 open_low: bool = False, open_high: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real number (not bool) in the interval from
    ``low`` to ``high`` (closed unless ``open_low``/``open_high``); else raise ValueError naming it."""
    left, right = "(" if open_low or low == -math.inf else "[", ")" if open_high or high == math.inf else "]"
    interval = f"{left}{low:g}, {high:g}{right}"
    ok = (not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
          and (value > low if open_low else value >= low) and (value < high if open_high else value <= high))
    if not ok:
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def instance_seed(name: str, value: int) -> int:
    """Return ``value`` as an int if it is an integer (Python or numpy, not bool) in [0, 2**63), the
    range of the per-instance seeds ``train.spawn_seeds`` derives (the data generator takes seed + 1,
    which torch's range [0, 2**64) still holds); else raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or not 0 <= value < 2 ** 63:
        raise ValueError(f"{name} must hold integers in [0, 2**63), got {value!r}")
    return int(value)
