"""Minimal stand-in for the analytic Persian-rug theory (spec §4, Eqs. (5)-(8)).

Placeholder with the public names of the full module (written separately); only what the rug
chapter needs: v(p) = p/3 − p²/4, the best linear loss v(p)(1 − r) and the optimal symmetric loss
L*(p, r) = min_{a, b} L(a, b, a·s; p), s² = v(p)(1 − r)/r, with L of Eq. (5).
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad
from scipy.optimize import minimize


def feature_variance(p):
    """v(p) = Var x_i = p/3 − p²/4 for x_i = B_i U_i (scalar or array)."""
    p = np.asarray(p, dtype=float)
    return p / 3 - p ** 2 / 4


def linear_loss(p, r):
    """Best affine autoencoder of width r·n, per feature: v(p)(1 − r)."""
    return feature_variance(p) * (1 - np.asarray(r, dtype=float))


def _relu_moments(mean: float, std: float) -> tuple[float, float]:
    t = mean / std
    cdf, pdf = 0.5 * math.erfc(-t / math.sqrt(2)), math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    return mean * cdf + std * pdf, (mean * mean + std * std) * cdf + mean * std * pdf


def _symmetric_loss(a: float, b: float, sigma: float, p: float) -> float:
    """Eq. (5): (1−p) G2(b, σ) + p ∫₀¹ [G2(au+b, σ) − 2u G1(au+b, σ) + u²] du."""
    inactive = _relu_moments(b, sigma)[1]

    def active(u: float) -> float:
        g1, g2 = _relu_moments(a * u + b, sigma)
        return g2 - 2 * u * g1 + u * u

    u0 = -b / a
    points = [q for q in (u0 - 6 * sigma / a, u0, u0 + 6 * sigma / a) if 0 < q < 1]
    return (1 - p) * inactive + p * quad(active, 0, 1, points=points or None, limit=200)[0]


@dataclass(frozen=True)
class SymmetricOptimum:
    """L*(p, r) with its diagonal a* and effective bias b* (arrays shaped like the inputs)."""

    loss: np.ndarray
    a: np.ndarray
    b: np.ndarray


def _optimum(p: float, r: float) -> tuple[float, float, float]:
    s = float(np.sqrt(feature_variance(p) * (1 - r) / r))

    def objective(z: np.ndarray) -> float:
        a = float(np.exp(z[0]))
        return _symmetric_loss(a, -a * s * z[1], a * s, p)

    starts = [(np.log(a0), b0) for a0 in (0.05, 0.3, 1.0, 1.5) for b0 in (-2, 0.5, 1.5, 3, 4.5)]
    best = min((minimize(objective, z0, method="Nelder-Mead",
                         options=dict(xatol=1e-7, fatol=1e-15, maxiter=2000)) for z0 in starts),
               key=lambda res: res.fun)
    a = float(np.exp(best.x[0]))
    return float(best.fun), a, -a * s * float(best.x[1])


def optimal_symmetric_loss(p, r) -> SymmetricOptimum:
    """L*(p, r) of Eq. (8) by Nelder-Mead over (log a, β = −b/(a s)) from 20 starts."""
    p_arr, r_arr = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(r, dtype=float))
    if np.any((p_arr <= 0) | (p_arr > 1)):
        raise ValueError(f"p must lie in (0, 1], got {p!r}")
    if np.any((r_arr <= 0) | (r_arr >= 1)):
        raise ValueError(f"r must lie in (0, 1), got {r!r}")
    out = np.array([_optimum(pi, ri) for pi, ri in zip(p_arr.ravel(), r_arr.ravel())])
    shape = p_arr.shape
    return SymmetricOptimum(out[:, 0].reshape(shape), out[:, 1].reshape(shape),
                            out[:, 2].reshape(shape))
