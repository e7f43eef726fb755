"""Power-law fits: least squares of log y against log x, with the slope's standard error.

    y ≈ exp(intercept) · x^slope

One implementation for every exponent in the book (sizes, widths, sparsities); the uncertainty is the
ordinary least-squares standard error of the slope, sqrt(RSS / (N - 2) / Σ (log x - mean)²), NaN for
N = 2 points (a line through two points has no residual to estimate it from).
"""
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    """A fitted y = exp(intercept) · x^slope over ``n_points`` points."""
    slope: float
    intercept: float      # natural log of the prefactor
    slope_se: float       # standard error of the slope (NaN for two points)
    n_points: int

    def __call__(self, x) -> np.ndarray:
        """The fitted line at x."""
        return np.exp(self.intercept) * np.asarray(x, float) ** self.slope


def power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw:
    """Least-squares fit of log y = intercept + slope · log x; x, y positive, same length N >= 2."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"x and y must be 1-d of the same length >= 2, got shapes {x.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all() and (x > 0).all() and (y > 0).all()):
        raise ValueError("x and y must be positive and finite for a power-law fit")
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    n = len(lx)
    if n > 2:
        rss = float(np.sum((ly - (intercept + slope * lx)) ** 2))
        se = float(np.sqrt(rss / (n - 2) / np.sum((lx - lx.mean()) ** 2)))
    else:
        se = float("nan")
    return PowerLaw(float(slope), float(intercept), se, n)
