"""Argument checks shared by every module: each raises ValueError naming the parameter, its value
and the allowed range, so a reader who mistypes a keyword sees what to change."""
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


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
    """Return ``value`` as an int if it is an integer (numpy integers too) in [0, 2**63); else raise
    ValueError naming ``name`` (torch generators take seeds below 2**64; ours add 1 for the data)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2 ** 63:
        raise ValueError(f"{name} must be an integer in [0, 2**63), got {value!r}")
    return int(value)
