"""The scalar-channel bound on every elementwise activation (Persian Rug spec R11, [DERIVED]).

Whatever the nonlinearity φ after the linear bottleneck, output i sees the pre-activation
a x_i + ν_i + b with interference ν_i of standard deviation σ ≥ a·s (rank bound, Eq. 6), where

    s(p, r) = sqrt(v(p)(1 − r)/r),   v(p) = p/3 − p²/4       (``theory.min_interference_std``).

Dividing by a, the best any φ can do is the Bayes posterior mean for the scalar channel

    y = x + s Z,   x ~ (1 − p) δ₀ + p U[0, 1],   Z ~ N(0, 1),

    mmse(p, s) = E Var(x | y) = p/3 − ∫ f_Y(y) E[x | y]² dy.

With A = (y − 1)/s, B = y/s, ΔΦ = Φ(B) − Φ(A) (the probability that y came from some u ∈ [0, 1]):

    f_Y(y) = (1 − p) φ(y/s)/s + p ΔΦ,
    w(y)   = P(x ≠ 0 | y) = p ΔΦ / f_Y(y),
    m₁(y)  = E[u | y, x ≠ 0] = y − s λ,   λ = (φ(A) − φ(B))/ΔΦ   (truncated-normal mean),
    Var(u | y, x ≠ 0) = s² [1 + (A φ(A) − B φ(B))/ΔΦ − λ²],
    Var(x | y) = w Var(u | y, x ≠ 0) + w (1 − w) m₁².

Integrating Var(x | y) (a sum of non-negative terms) avoids the catastrophic cancellation of
p/3 − ∫ f E[x|y]², and w, 1 − w, ΔΦ are formed from logarithms (``log_ndtr``, ``logsumexp``), so
nothing underflows for s ≪ 0.1 (spec §7). Limits: mmse → v(p) as s → ∞, mmse ≈ p s² as s → 0.

JumpReLU on the same channel (spec R11): φ(y) = c·y·1[y > θ]. Its loss is, with t_u = (θ − u)/s,

    L_J(θ, c) = (1 − p) c² s² [Φ̄(θ/s) + (θ/s) φ(θ/s)]
              + p ∫₀¹ { u² Φ(t_u) + (1 − c)² u² Φ̄(t_u) + c² s² Φ̄(t_u) + s φ(t_u) [c²(u + θ) − 2 c u] } du,

optimised over (θ, c) by Nelder–Mead from several starts (``optimal_jumprelu``). TopK in the large-n
limit is a data-independent threshold, so it is covered by the same bound (spec R11).

Paper → code: p → ``feature_prob``, s → ``noise_std`` (the interference std per unit diagonal, as in
``theory.optimal_loss_at_noise``); v(p) is ``theory.feature_variance``.
Scalars p ∈ (0, 1], s > 0 throughout; functions accept floats and return floats unless noted.
"""
from dataclasses import dataclass

import numpy as np
from scipy.integrate import simpson
from scipy.optimize import minimize
from scipy.special import log_ndtr, logsumexp, ndtr

from toysup.persian_rug.theory import feature_variance

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _check_p(feature_prob: float) -> float:
    if not 0 < feature_prob <= 1:
        raise ValueError(f"feature_prob must lie in (0, 1], got {feature_prob!r}")
    return float(feature_prob)


def _check_s(noise_std: float) -> float:
    if not noise_std > 0:
        raise ValueError(f"noise_std must be > 0, got {noise_std!r}")
    return float(noise_std)


def _log_phi(t: np.ndarray) -> np.ndarray:
    return -0.5 * t * t - _LOG_SQRT_2PI


def _log_delta_Phi(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """log(Φ(B) − Φ(A)) for A < B, from the tail that keeps precision (the upper one if A > 0)."""
    upper = A > 0
    hi = np.where(upper, log_ndtr(-A), log_ndtr(B))      # the larger of the two tail masses
    lo = np.where(upper, log_ndtr(-B), log_ndtr(A))
    return hi + np.log1p(-np.exp(lo - hi))


def mmse(feature_prob: float, noise_std: float, *, points_per_s: int = 50) -> float:
    """mmse(p, s) = E Var(x | x + sZ) for x ~ (1 − p)δ₀ + p U[0, 1], computed in log space.

    Trapezoid rule on y ∈ [−10 s, 1 + 10 s] (everything outside carries weight < e⁻⁵⁰) with step
    s/points_per_s within 12 s of the edges y = 0 and y = 1, where the integrand varies on the scale
    s (for s > 1 everywhere: f_Y is then a box of width 1 smoothed by a Gaussian of width s); between
    the edges (s < 1/30 only) Var(x | y) ≈ s² is flat up to e⁻⁷² and 400 points do.
    """
    p, s = _check_p(feature_prob), _check_s(noise_std)
    h = s / points_per_s
    if s < 1 / 30:
        edge = np.arange(-10 * s, 12 * s, h)
        y = np.concatenate([edge, np.linspace(12 * s, 1 - 12 * s, 400)[1:-1], 1 - edge[::-1]])
    else:
        y = np.arange(-10 * s, 1 + 10 * s + h, h)
    A, B = (y - 1) / s, y / s
    log_dphi = _log_delta_Phi(A, B)
    log_on = np.log(p) + log_dphi                                   # p ΔΦ
    log_off = np.log1p(-p) + _log_phi(B) - np.log(s) if p < 1 else np.full_like(y, -np.inf)
    log_f = logsumexp(np.stack([log_on, log_off]), axis=0)          # f_Y(y)
    w = np.exp(log_on - log_f)
    w_off = np.exp(log_off - log_f)                                 # 1 − w without cancellation
    lam = np.exp(_log_phi(A) - log_dphi) - np.exp(_log_phi(B) - log_dphi)
    m1 = y - s * lam
    var_t = 1 + A * np.exp(_log_phi(A) - log_dphi) - B * np.exp(_log_phi(B) - log_dphi) - lam ** 2
    var_u = s * s * np.clip(var_t, 0.0, 1.0)
    f = np.exp(log_f)
    integrand = f * (w * var_u + w * w_off * m1 * m1)
    return float(np.trapezoid(integrand, y))


def jumprelu_loss(threshold: float, scale: float, feature_prob: float, noise_std: float, *,
                  points_per_s: int = 40) -> float:
    """L_J(θ, c): loss of φ(y) = c·y·1[y > θ] on the channel y = x + sZ (module docstring).

    The u-integral is Simpson's rule with step at most min(s, 1)/points_per_s on [0, 1].
    """
    p, s = _check_p(feature_prob), _check_s(noise_std)
    theta, c = float(threshold), float(scale)
    n_u = 2 * int(np.ceil(points_per_s / min(s, 1.0) / 2)) + 1   # odd, for Simpson
    u = np.linspace(0.0, 1.0, n_u)
    t = (theta - u) / s
    Phi, Phi_bar, phi = ndtr(t), ndtr(-t), np.exp(_log_phi(t))
    active = (u * u * Phi + (1 - c) ** 2 * u * u * Phi_bar + c * c * s * s * Phi_bar
              + s * phi * (c * c * (u + theta) - 2 * c * u))
    t0 = theta / s
    inactive = c * c * s * s * (ndtr(-t0) + t0 * np.exp(_log_phi(np.array(t0))))
    return float((1 - p) * inactive + p * simpson(active, x=u))


@dataclass(frozen=True)
class JumpReLUOptimum:
    """Optimal JumpReLU on the scalar channel: loss, threshold θ (in units of x) and scale c."""

    loss: float
    threshold: float
    scale: float


def optimal_jumprelu(feature_prob: float, noise_std: float) -> JumpReLUOptimum:
    """min over (θ, c) of L_J, Nelder–Mead over (θ/s, log c) from thresholds 0…5 noise stds."""
    p, s = _check_p(feature_prob), _check_s(noise_std)

    def objective(z: np.ndarray) -> float:
        return jumprelu_loss(z[0] * s, np.exp(z[1]), p, s)

    best = None
    for beta0 in (0.0, 1.0, 2.0, 3.0, 4.5):
        for logc0 in (0.0, -1.0):
            res = minimize(objective, np.array([beta0, logc0]), method="Nelder-Mead",
                           options=dict(xatol=1e-6, fatol=1e-18, maxiter=2000))
            if best is None or res.fun < best.fun:
                best = res
    return JumpReLUOptimum(loss=float(best.fun), threshold=float(best.x[0] * s),
                           scale=float(np.exp(best.x[1])))


def row_bound(feature_prob: float, diag: np.ndarray, sigma: np.ndarray, *,
              n_grid: int = 200) -> np.ndarray:
    """Per-row bound mmse(p, σ_i/a_i) for a trained model with diagonal a_i and interference std σ_i.

    Rows with a_i ≤ 0 read nothing of their own feature: their bound is v(p) (the s → ∞ limit).
    mmse is evaluated on n_grid log-spaced values of s and interpolated in log–log coordinates
    (relative error below 1e-4 for n_grid ≥ 100). diag, sigma: arrays of equal shape.
    """
    p = _check_p(feature_prob)
    diag, sigma = np.asarray(diag, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    if diag.shape != sigma.shape:
        raise ValueError(f"diag and sigma must have the same shape, got {diag.shape} and {sigma.shape}")
    v = feature_variance(p)
    alive = diag > 0
    out = np.full(diag.shape, v)
    if alive.any():
        s = np.maximum(sigma[alive] / diag[alive], 1e-6)
        grid = np.geomspace(s.min(), s.max() * (1 + 1e-9), n_grid) if s.max() > s.min() * 1.0001 \
            else np.array([s.min()])
        values = np.array([mmse(p, g) for g in grid])
        out[alive] = np.exp(np.interp(np.log(s), np.log(grid), np.log(values))) if len(grid) > 1 \
            else values[0]
    return out
