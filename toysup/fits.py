"""Power-law fits: least squares of log y against log x, with the slope's standard error, and a
bootstrap interval over independent units (network seeds) and the points measured on them.

    y ≈ exp(intercept) · x^slope

One implementation for every exponent in the book (sizes, widths, sparsities); the uncertainty is the
ordinary least-squares standard error of the slope, sqrt(RSS / (N - 2) / Σ (log x - mean)²), NaN for
N = 2 points (a line through two points has no residual to estimate it from).
"""
import warnings
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


@dataclass(frozen=True)
class Interval:
    """A statistic on all the data and its bootstrap percentile interval."""
    estimate: float
    low: float
    high: float
    level: float          # e.g. 0.95
    n_boot: int           # replicates that gave a finite value

    def contains(self, value: float) -> bool:
        """True if low <= value <= high."""
        return self.low <= value <= self.high


def bootstrap(groups: Sequence[np.ndarray], statistic, *, n_boot: int = 2000, level: float = 0.95,
              seed: int = 0) -> Interval:
    """Two-level bootstrap percentile interval of ``statistic``.

    groups: one array per independent unit (a network seed), its rows the points measured on it
    (e.g. columns x, y). Each replicate draws len(groups) groups with replacement, then, within
    each drawn group, its rows with replacement, and evaluates ``statistic`` on the stacked rows;
    replicates where it is not finite (e.g. all x equal) are dropped. The estimate is ``statistic``
    of all rows."""
    if len(groups) < 1 or any(len(g) < 1 for g in groups):
        raise ValueError("groups must be a non-empty list of non-empty arrays")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    groups = [np.asarray(g, float) for g in groups]
    values = []
    for _ in range(n_boot):
        drawn = [groups[k] for k in rng.integers(0, len(groups), len(groups))]
        rows = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in drawn])
        with np.errstate(all="ignore"):
            value = _safe(statistic, rows)
        if np.isfinite(value):
            values.append(value)
    if len(values) < n_boot // 2:
        raise ValueError(f"statistic was finite in only {len(values)} of {n_boot} replicates")
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(statistic(np.concatenate(groups))), float(low), float(high), level,
                    len(values))


def _safe(statistic, rows: np.ndarray) -> float:
    """statistic(rows), or NaN where it fails or warns that a fit is ill-conditioned."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.RankWarning)
        try:
            return float(statistic(rows))
        except (ValueError, np.linalg.LinAlgError, np.exceptions.RankWarning):
            return float("nan")


def slope_interval(x: Sequence[float], y: Sequence[float], groups: Sequence[int], *,
                   n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """``power_law`` slope of y against x with a ``bootstrap`` interval over groups (network seeds)
    and the points within them; a replicate with fewer than two distinct x is dropped."""
    return _slopes_interval(x, [y], groups, lambda s: s[0], n_boot=n_boot, level=level, seed=seed)


def slope_difference_interval(x: Sequence[float], y_low: Sequence[float], y_high: Sequence[float],
                              groups: Sequence[int], *, n_boot: int = 2000, level: float = 0.95,
                              seed: int = 0) -> Interval:
    """slope(y_high) - slope(y_low), both ``power_law`` fits against the same x, with a ``bootstrap``
    interval that resamples the (x, y_low, y_high) rows together (e.g. the maximum and the mean of
    one table: do they scale differently?)."""
    return _slopes_interval(x, [y_low, y_high], groups, lambda s: s[1] - s[0], n_boot=n_boot,
                            level=level, seed=seed)


def _slopes_interval(x, ys, groups, combine, **kwargs) -> Interval:
    x, groups = np.asarray(x, float), np.asarray(groups)
    ys = [np.asarray(y, float) for y in ys]
    if any(not (x.shape == y.shape == groups.shape) for y in ys):
        raise ValueError(f"x, y and groups must have the same shape, got {x.shape}, "
                         f"{[y.shape for y in ys]}, {groups.shape}")
    data = [np.column_stack([x[groups == g]] + [y[groups == g] for y in ys]) for g in np.unique(groups)]

    def statistic(rows: np.ndarray) -> float:
        if len(np.unique(rows[:, 0])) < 2:
            return float("nan")
        return combine([power_law(rows[:, 0], rows[:, k]).slope for k in range(1, rows.shape[1])])

    return bootstrap(data, statistic, **kwargs)
