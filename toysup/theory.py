"""Closed-form reference losses of the Persian Rug model (per feature).

v(p) = Var x_i = p/3 − p²/4 for x_i = B_i U_i, B_i ~ Bernoulli(p), U_i ~ U[0, 1].
Zero output: L₀ = E x_i² = p/3.  Best affine autoencoder of width m = r·n (spec R12, derived): the bias
takes the mean p/2 and the m principal directions of the covariance v·I remove m of the n equal
eigenvalues, so L_lin = v(p)(1 − r). The authors' code (``utils/opt_linear.py``) instead sums the
eigenvalue p/3 (the second moment, ignoring the mean) over n − m − 1 directions (one too few):
L_code = (p/3)(n − m − 1)/n.
"""
import numpy as np

from toysup import checks


def feature_variance(p):
    """v(p) = p/3 − p²/4, the variance of one feature; array-like p in (0, 1]."""
    p = _prob("p", p)
    return p / 3 - p * p / 4


def zero_output_loss(p):
    """L₀ = p/3: the loss of a model that outputs 0."""
    return _prob("p", p) / 3


def linear_loss(p, r):
    """L_lin = v(p)(1 − r): the optimal affine autoencoder of width r·n (with bias)."""
    return feature_variance(p) * (1 - _prob("r", r))


def linear_loss_authors_code(p, n_features: int, d_hidden: int):
    """(p/3)(n − m − 1)/n: the authors' code's 'optimal linear' loss (ignores the mean, off by one)."""
    checks.positive_int("n_features", n_features)
    checks.positive_int("d_hidden", d_hidden, maximum=n_features)
    return _prob("p", p) / 3 * (n_features - d_hidden - 1) / n_features


def _prob(name: str, value):
    """value as a float64 array, every entry in (0, 1]."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.all((arr > 0) & (arr <= 1)):
        bad = arr[~((arr > 0) & (arr <= 1))].ravel()[0]
        raise ValueError(f"{name} must lie in (0, 1], got {bad!r}")
    return arr


# --- Minimal stand-ins for the symmetric theory (spec §4, §9.2). The chapter-3 helper's full
# --- implementation with the same names replaces these at merge time.
from dataclasses import dataclass as _dataclass

from scipy.optimize import minimize as _minimize
from scipy.special import ndtr as _ndtr

_GL_X, _GL_W = np.polynomial.legendre.leggauss(200)


def min_interference_std(p, r):
    """s(p, r) = sqrt(v(p)(1 − r)/r): the least interference std per unit diagonal (Eq. 6)."""
    return np.sqrt(feature_variance(p) * (1 - _prob("r", r)) / _prob("r", r))


def _relu_moments(m, s):
    """E ReLU(m + sZ) and E ReLU(m + sZ)² (spec §4, G₁ and G₂)."""
    t = m / s
    P, f = _ndtr(t), np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)
    return m * P + s * f, (m * m + s * s) * P + m * s * f


def symmetric_loss(a, b, sigma, p):
    """Eq. (5): L(a, b, σ; p) for diagonal a, effective bias b and Gaussian interference std σ."""
    a, b, sigma, p = float(a), float(b), max(float(sigma), 1e-300), float(p)
    inactive = _relu_moments(b, sigma)[1]
    u0 = -b / a if a > 0 else -1.0
    cuts = sorted({0.0, 1.0, *[q for q in (u0 - 6 * sigma / a, u0, u0 + 6 * sigma / a)
                              if 0 < q < 1]} if a > 0 else {0.0, 1.0})
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        u = 0.5 * (hi - lo) * _GL_X + 0.5 * (hi + lo)
        g1, g2 = _relu_moments(a * u + b, sigma)
        total += 0.5 * (hi - lo) * np.dot(_GL_W, g2 - 2 * u * g1 + u * u)
    return (1 - p) * inactive + p * total


@_dataclass(frozen=True)
class SymmetricOptimum:
    """L*(p, r) with its diagonal a* and effective bias b*."""

    loss: float
    a: float
    b: float


def optimal_symmetric_loss(p, r):
    """Eq. (8): min over a ≥ 0, b of L(a, b, a·s(p, r); p), Nelder–Mead over (log a, β = −b/(a s))."""
    p, r = float(p), float(r)
    s = float(min_interference_std(p, r))

    def f(z):  # in units of p/3, so that one absolute tolerance serves every p
        a = np.exp(z[0])
        return symmetric_loss(a, -a * s * z[1], a * s, p) * 3 / p

    starts = [(0.05, 0.5), (0.3, 1.5), (1.0, 1.5), (1.0, 3.0), (1.5, 4.5), (1.0, -2.0)]
    best = min((_minimize(f, np.array([np.log(a0), b0]), method="Nelder-Mead",
                          options=dict(xatol=1e-6, fatol=1e-11, maxiter=3000)) for a0, b0 in starts),
               key=lambda res: res.fun)
    best.fun *= p / 3
    a = float(np.exp(best.x[0]))
    return SymmetricOptimum(loss=float(best.fun), a=a, b=float(-a * s * best.x[1]))
