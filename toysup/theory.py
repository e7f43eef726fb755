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


# Minimal stand-ins for chapter 2; the full implementations (same names) come from chapter 3's module.

def symmetric_loss(a: float, b: float, sigma: float, p: float) -> float:
    """Eq. (5): the loss of y = ReLU(a x + b + σZ) per feature, x = B·U, Z ~ N(0, 1).

    L = (1 − p) G₂(b, σ) + p ∫₀¹ [G₂(au + b, σ) − 2u G₁(au + b, σ) + u²] du with the Gaussian ReLU
    moments G₁, G₂ (spec §4); the u-integral is split at the kink u₀ = −b/a.
    """
    from scipy.integrate import quad
    from scipy.stats import norm

    p = float(_prob("p", p))
    sigma = max(float(sigma), 1e-12)

    def moments(m: float) -> tuple[float, float]:
        t = m / sigma
        cdf, pdf = norm.cdf(t), norm.pdf(t)
        return m * cdf + sigma * pdf, (m * m + sigma * sigma) * cdf + m * sigma * pdf

    def active(u: float) -> float:
        g1, g2 = moments(a * u + b)
        return g2 - 2 * u * g1 + u * u

    points = None
    if a > 0:
        u0 = -b / a
        points = [q for q in (u0 - 6 * sigma / a, u0, u0 + 6 * sigma / a) if 0 < q < 1] or None
    return (1 - p) * moments(b)[1] + p * quad(active, 0, 1, points=points, limit=200)[0]


class SymmetricOptimum:
    """L*(p, r) with its minimiser: ``loss``, ``a`` and ``b`` (the effective bias)."""

    def __init__(self, loss: float, a: float, b: float) -> None:
        self.loss, self.a, self.b = loss, a, b


def optimal_symmetric_loss(p: float, r: float) -> SymmetricOptimum:
    """Eq. (8): min over a ≥ 0, b of Eq. (5) at σ = a·s(p, r), s² = v(p)(1 − r)/r (Nelder-Mead over
    (log a, β), b = −a s β, from several starts; spec §9.2)."""
    from scipy.optimize import minimize

    s = float(np.sqrt(feature_variance(p) * (1 - _prob("r", r)) / r))

    def objective(z: np.ndarray) -> float:
        a = float(np.exp(z[0]))
        return symmetric_loss(a, -a * s * z[1], a * s, p)

    starts = [(np.log(0.05), -2.0), (np.log(0.3), 0.5), (0.0, 1.5), (np.log(1.5), 3.0)]
    best = min((minimize(objective, z0, method="Nelder-Mead",
                         options=dict(xatol=1e-5, fatol=1e-12, maxiter=1000)) for z0 in starts),
               key=lambda res: res.fun)
    a = float(np.exp(best.x[0]))
    return SymmetricOptimum(float(best.fun), a, -a * s * float(best.x[1]))
