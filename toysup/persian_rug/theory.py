"""Analytic loss of the Persian-rug autoencoder in the large-n limit (Cowsik et al. 2024, §4).

Model f(x) = ReLU(W x + b) with W = W_out W_in of rank <= m, data x_i = B_i U_i, B_i ~ Bernoulli(p),
U_i ~ U[0, 1]; per-feature loss L = E (f(x)_i - x_i)^2. Paper -> code: n_s -> n_features,
n_d -> d_hidden, r = n_d / n_s -> ``ratio``, p -> ``feature_prob``, a = W_ii, b = effective bias
b_i + mu_i, sigma = std of the interference nu_i = sum_{j != i} W_ij x_j, s -> ``noise_std``.

Core equations (spec persian_rug.md §4):

    v(p)    = Var x_i = p/3 - p^2/4
    s(p, r) = sqrt(v (1 - r) / r)                              minimal interference std per unit a
    G1(m, sigma) = E ReLU(m + sigma Z)   = m Phi(m/sigma) + sigma phi(m/sigma)
    G2(m, sigma) = E ReLU(m + sigma Z)^2 = (m^2 + sigma^2) Phi(m/sigma) + m sigma phi(m/sigma)
    L(a, b, sigma; p) = (1 - p) G2(b, sigma)
                        + p int_0^1 [G2(a u + b, sigma) - 2 u G1(a u + b, sigma) + u^2] du     (5)
    (1/n) sum_i sum_{j != i} W_ij^2 >= a^2 (n/m - 1)  for rank W <= m, W_ii = a               (6)
    L*(p, r) = min_{a >= 0, b} L(a, b, a s(p, r); p)                                          (8)

Linear baselines (R12): the best affine autoencoder of width m has loss v(p)(1 - r); the authors'
code plots (p/3)(n - m - 1)/n instead (ignores the mean p/2 and drops one eigenvalue too many).

High sparsity (R10): L* ~ (p^2/6) ((1 - r)/r) ln(1/p) as p -> 0 at fixed r; the explicit choice
a = 1, b = -sigma sqrt(2 ln(1/p)) gives the upper bound L(1, b, sigma) ~ p sigma^2 (1 + 2 ln(1/p)).

Numerics: the u-integral of (5) has a kink of width sigma/a at u0 = -b/a; it is computed by fixed
Gauss-Legendre quadrature (``N_NODES`` nodes) on the four pieces [0, u0 - 6 sigma/a, u0,
u0 + 6 sigma/a, 1] clipped to [0, 1], with an integrand written without cancellation, so it stays
accurate down to p = 1e-8 (L ~ 1e-15). sigma = 0 is the exact limit G1 -> ReLU(m), G2 -> ReLU(m)^2.
The minimum (8) is found for every (p, r) at once by a vectorised Levenberg-Marquardt (damped Newton)
iteration with analytic gradient and Hessian, started from the linear solution and from the best
points of a coarse (a, beta) grid, so both basins (linear: a ~ r, b > 0; thresholding: a ~ 1-1.5,
b < 0) are explored.

Public API (numpy in, numpy out; scalars in give numpy floats out):
    feature_variance (any array type, see there), zero_output_loss, linear_loss,
    linear_loss_authors_code, min_interference_std (s)
    gaussian_relu_moments (G1, G2), symmetric_loss (5), dloss_dsigma
    optimal_symmetric_loss (8) -> SymmetricOptimum(loss, a, b, beta, sigma); optimal_loss_at_noise
    rank_bound_ratio (6, the one implementation; also behind ``stats`` and ``rug``);
    equalise_diagonal, random_low_rank, rank_bound_experiment (projectors from ``projectors``)
    rank_bound_summary; noise_elasticity, loss_vs_noise; reference_errors, ratio_to_linear,
    crossover_loss; high_sparsity_loss, high_sparsity_upper_bound(_asymptote), crossover_ratio,
    high_sparsity_table, high_sparsity_errors (against SPEC_R10), high_sparsity_slopes;
    scalar_channel_loss_mc, eq5_vs_monte_carlo (Monte Carlo of (5))
Shapes: everything broadcasts elementwise over p, r, a, b, sigma; W_eff is (n, n) or (k, n, n) with a
leading instances axis; random matrices are torch float64 (k, n, n) drawn from a torch.Generator.
All functions are pure. Every feature_prob or ratio outside (0, 1] raises ValueError naming it.
"""
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from scipy.special import ndtr

from toysup import checks, fits
from toysup.persian_rug import projectors
from toysup.persian_rug.model import hidden_width

N_NODES = 24                                  # Gauss-Legendre nodes per quadrature piece
KINK_HALF_WIDTH = 6.0                         # pieces end 6 sigma/a either side of the kink
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(N_NODES)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# ----------------------------------------------------------------------------- argument checks
def _unit(name: str, value: ArrayLike) -> np.ndarray:
    """value as a float64 array whose entries all lie in (0, 1]; else ValueError naming ``name``."""
    x = np.asarray(value, dtype=np.float64)
    bad = ~((x > 0) & (x <= 1))
    if bad.any():
        raise ValueError(f"{name} must lie in (0, 1], got {x[bad].flat[0]!r}")
    return x


def _nonneg(name: str, value: ArrayLike, *, strict: bool = False) -> np.ndarray:
    """value as a float64 array of finite entries >= 0 (> 0 with ``strict``)."""
    x = np.asarray(value, dtype=np.float64)
    ok = (x > 0) if strict else (x >= 0)
    bad = ~(ok & np.isfinite(x))
    if bad.any():
        allowed = "(0, inf)" if strict else "[0, inf)"
        raise ValueError(f"{name} must be finite and in {allowed}, got {x[bad].flat[0]!r}")
    return x


def _finite(name: str, value: ArrayLike) -> np.ndarray:
    x = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} must be finite, got {x[bad].flat[0]!r}")
    return x


def _out(x: np.ndarray):
    """0-d arrays become numpy floats, so scalar inputs give scalar outputs."""
    return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x


# ----------------------------------------------------------------------------- baselines
def feature_variance(feature_prob):
    """v(p) = Var x_i = p/3 - p^2/4 for x_i = B_i U_i (E x = p/2, E x^2 = p/3): the one formula.

    Plain arithmetic on whatever it is given, so it keeps the input's type and dtype: a float gives a
    float, a numpy array an array, a torch tensor a tensor on its device (every caller in
    ``toysup.persian_rug`` uses this, bit for bit what the formula written out gives). Every entry
    must lie in (0, 1], else ValueError naming feature_prob.
    """
    p = feature_prob
    inside = (p > 0) & (p <= 1)
    if not (inside.all() if hasattr(inside, "all") else inside):
        raise ValueError(f"feature_prob must lie in (0, 1], got {feature_prob!r}")
    return p / 3 - p * p / 4


def zero_output_loss(feature_prob: ArrayLike):
    """Loss of the zero output, E x_i^2 = p/3 (the trivial value of the loss at r -> 0)."""
    p = _unit("feature_prob", feature_prob)
    return _out(p / 3)


def linear_loss(feature_prob: ArrayLike, ratio: ArrayLike):
    """Optimal affine autoencoder of width m = r n (R12): L_lin = v(p) (1 - r).

    The covariance is v I, so the best rank-m linear map keeps m of n equal eigenvalues; the bias
    takes care of the mean p/2. This is also L(a=r, b=(p/2)(1-r), sigma=r s) with the ReLU inactive.
    """
    p, r = _unit("feature_prob", feature_prob), _unit("ratio", ratio)
    return _out(feature_variance(p) * (1 - r))


def linear_loss_authors_code(feature_prob: ArrayLike, n_features: int, d_hidden: ArrayLike):
    """The authors' "Optimal Linear Model" (``utils/opt_linear.py``): (p/3) (n - m - 1) / n.

    It treats the second-moment matrix as (p/3) I (ignores the mean p/2) and sums the discarded
    eigenvalues from k = m + 2 instead of m + 1 (off by one). Kept to reproduce their figure (R12).
    n_features: int n; d_hidden: integer(s) m in [1, n], broadcast with feature_prob.
    """
    p = _unit("feature_prob", feature_prob)
    if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer) or n_features < 1:
        raise ValueError(f"n_features must be an integer in [1, inf], got {n_features!r}")
    m = np.asarray(d_hidden)
    if m.dtype.kind not in "iu" or np.any((m < 1) | (m > n_features)):
        raise ValueError(f"d_hidden must hold integers in [1, {n_features}], got {d_hidden!r}")
    return _out(p / 3 * np.maximum(n_features - m - 1, 0) / n_features)


def min_interference_std(feature_prob: ArrayLike, ratio: ArrayLike):
    """s(p, r) = sqrt(v(p) (1 - r) / r): least interference std per unit diagonal, from bound (6).

    The one implementation of s (also the noise level of the scalar channel in ``mmse``)."""
    p, r = _unit("feature_prob", feature_prob), _unit("ratio", ratio)
    return _out(np.sqrt(feature_variance(p) * (1 - r) / r))


# ----------------------------------------------------------------------------- Gaussian ReLU moments
def _phi_Phi(m: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """t = m/sigma (±inf for sigma = 0), phi(t), Phi(t)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sigma > 0, m / np.where(sigma > 0, sigma, 1.0), np.where(m > 0, np.inf, -np.inf))
    return t, _INV_SQRT_2PI * np.exp(-0.5 * t * t), ndtr(t)


def _tail_moments(m: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """G1(-|m|, sigma), G2(-|m|, sigma): the small side of the ReLU, non-negative by construction."""
    mm = -np.abs(m)
    _, phi, Phi = _phi_Phi(mm, sigma)
    t1 = np.maximum(mm * Phi + sigma * phi, 0.0)
    t2 = np.maximum((mm * mm + sigma * sigma) * Phi + mm * sigma * phi, 0.0)
    return t1, t2


def gaussian_relu_moments(m: ArrayLike, sigma: ArrayLike) -> tuple:
    """G1 = E ReLU(m + sigma Z), G2 = E ReLU(m + sigma Z)^2 for Z ~ N(0, 1), broadcast.

    G1 = m Phi(m/sigma) + sigma phi(m/sigma); G2 = (m^2 + sigma^2) Phi(m/sigma) + m sigma phi(m/sigma).
    Computed stably for m > 0 through ReLU(y) - ReLU(-y) = y and ReLU(y)^2 + ReLU(-y)^2 = y^2;
    sigma = 0 gives ReLU(m) and ReLU(m)^2.
    """
    m = _finite("m", m)
    sigma = _nonneg("sigma", sigma)
    m, sigma = np.broadcast_arrays(m, sigma)
    t1, t2 = _tail_moments(m, sigma)
    g1 = np.maximum(m, 0.0) + t1
    g2 = np.where(m >= 0, m * m + sigma * sigma - t2, t2)
    return _out(g1), _out(g2)


# ----------------------------------------------------------------------------- Eq. (5)
def _quadrature(a: np.ndarray, b: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes u and weights w, shape (..., 4 N_NODES), for int_0^1 split at the kink u0 = -b/a."""
    with np.errstate(divide="ignore", invalid="ignore"):
        u0 = np.where(a > 0, -b / np.where(a > 0, a, 1.0), 2.0)
        half = np.where(a > 0, KINK_HALF_WIDTH * sigma / np.where(a > 0, a, 1.0), 0.0)
    cuts = np.stack([np.zeros_like(u0), u0 - half, u0, u0 + half, np.ones_like(u0)], axis=-1)
    cuts = np.clip(cuts, 0.0, 1.0)
    lo, hi = cuts[..., :-1, None], cuts[..., 1:, None]                     # (..., 4, 1)
    u = lo + (hi - lo) * (_NODES + 1) / 2
    w = (hi - lo) / 2 * _WEIGHTS
    shape = u.shape[:-2] + (4 * N_NODES,)
    return u.reshape(shape), w.reshape(shape)


def _active_integrand(u: np.ndarray, a: np.ndarray, b: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """E (ReLU(a u + b + sigma Z) - u)^2 without cancellation.

    m = a u + b >= 0: (m - u)^2 + sigma^2 - G2(-m) - 2 u G1(-m);  m < 0: G2(m) - 2 u G1(m) + u^2.
    """
    m = a * u + b
    t1, t2 = _tail_moments(m, sigma)
    err = (a - 1) * u + b
    return np.where(m >= 0, err * err + sigma * sigma - t2 - 2 * u * t1, t2 - 2 * u * t1 + u * u)


def symmetric_loss(a: ArrayLike, b: ArrayLike, sigma: ArrayLike, feature_prob: ArrayLike):
    """Per-feature loss of a permutation-symmetric model, Eq. (5), broadcast over all arguments.

    a: common diagonal W_ii (>= 0); b: effective bias b_i + mu_i; sigma: interference std (>= 0);
    feature_prob: p in (0, 1].
        L = (1 - p) G2(b, sigma) + p int_0^1 [G2(a u + b, sigma) - 2 u G1(a u + b, sigma) + u^2] du.
    Sanity values: L(0, p/2, 0) = v(p); L(1, 0, 0) = 0.
    """
    a, b = _nonneg("a", a), _finite("b", b)
    sigma, p = _nonneg("sigma", sigma), _unit("feature_prob", feature_prob)
    a, b, sigma, p = np.broadcast_arrays(a, b, sigma, p)
    return _out(_loss(a, b, sigma, p))


def _loss(a, b, sigma, p):
    _, g2 = gaussian_relu_moments(b, sigma)
    u, w = _quadrature(a, b, sigma)
    active = np.sum(w * _active_integrand(u, a[..., None], b[..., None], sigma[..., None]), axis=-1)
    return (1 - p) * np.asarray(g2) + p * active


def dloss_dsigma(a: ArrayLike, b: ArrayLike, sigma: ArrayLike, feature_prob: ArrayLike):
    """dL/dsigma of Eq. (5) at fixed (a, b), broadcast; sigma > 0.

    Uses dG2/dsigma = 2 sigma Phi(m/sigma), dG1/dsigma = phi(m/sigma):
        dL/dsigma = (1 - p) 2 sigma Phi(b/sigma)
                    + p int_0^1 [2 sigma Phi((a u + b)/sigma) - 2 u phi((a u + b)/sigma)] du.
    By the envelope theorem, d L*/d s = a* dL/dsigma at the optimum of (8): positive there means the
    least interference allowed by the rank bound (6) is optimal.
    """
    a, b = _nonneg("a", a), _finite("b", b)
    sigma, p = _nonneg("sigma", sigma, strict=True), _unit("feature_prob", feature_prob)
    a, b, sigma, p = np.broadcast_arrays(a, b, sigma, p)
    _, _, Phi_b = _phi_Phi(b, sigma)
    u, w = _quadrature(a, b, sigma)
    _, phi, Phi = _phi_Phi(a[..., None] * u + b[..., None], sigma[..., None])
    active = np.sum(w * (2 * sigma[..., None] * Phi - 2 * u * phi), axis=-1)
    return _out((1 - p) * 2 * sigma * Phi_b + p * active)


def _loss_grad_hess(a, b, s, p):
    """L(a, b, a s; p), its gradient (dL/da, dL/db) and Hessian, for 1-d arrays (sigma = a s > 0).

    Partial derivatives of the integrand F(m, sigma) = G2 - 2 u G1 + u^2:
      F_m = 2 G1 - 2 u Phi,   F_s = 2 sigma Phi - 2 u phi,
      F_mm = 2 Phi - 2 u phi/sigma,   F_ms = 2 phi + 2 u t phi/sigma,
      F_ss = 2 Phi - 2 t phi - 2 u t^2 phi/sigma;    with m = a u + b, sigma = a s.
    """
    sigma = a * s
    # inactive features: G2(b, sigma); dm/da = 0, dsigma/da = s
    g1b, g2b = gaussian_relu_moments(b, sigma)
    tb, phib, Phib = _phi_Phi(b, sigma)
    in_a = s * 2 * sigma * Phib
    in_b = 2 * np.asarray(g1b)
    in_aa = s * s * (2 * Phib - 2 * tb * phib)
    in_ab = s * 2 * phib
    in_bb = 2 * Phib
    # active features
    u, w = _quadrature(a, b, sigma)
    A, B, S, SG = a[:, None], b[:, None], s[:, None], sigma[:, None]
    m = A * u + B
    t, phi, Phi = _phi_Phi(m, SG)
    t1, _ = _tail_moments(m, SG)
    f = _active_integrand(u, A, B, SG)
    err = (A - 1) * u + B
    fm = np.where(m >= 0, 2 * err + 2 * t1 + 2 * u * (1 - Phi), 2 * t1 - 2 * u * Phi)
    fs = 2 * SG * Phi - 2 * u * phi
    fmm = 2 * Phi - 2 * u * phi / SG
    fms = 2 * phi + 2 * u * t * phi / SG
    fss = 2 * Phi - 2 * t * phi - 2 * u * t * t * phi / SG
    integral = lambda x: np.sum(w * x, axis=-1)  # noqa: E731
    q = 1 - p
    loss = q * np.asarray(g2b) + p * integral(f)
    grad = np.stack([q * in_a + p * integral(u * fm + S * fs), q * in_b + p * integral(fm)], -1)
    h_aa = q * in_aa + p * integral(u * u * fmm + 2 * u * S * fms + S * S * fss)
    h_ab = q * in_ab + p * integral(u * fmm + S * fms)
    h_bb = q * in_bb + p * integral(fmm)
    return loss, grad, np.stack([np.stack([h_aa, h_ab], -1), np.stack([h_ab, h_bb], -1)], -2)


def _minimise(a, b, s, p, max_iter: int = 100):
    """Vectorised Levenberg-Marquardt on (a, b) for L(a, b, a s; p); returns a, b, loss (1-d)."""
    a, b = a.astype(np.float64).copy(), b.astype(np.float64).copy()
    loss, grad, hess = _loss_grad_hess(a, b, s, p)
    damping = np.full_like(a, 1e-3)
    live = np.arange(a.size)
    for _ in range(max_iter):
        if live.size == 0:
            break
        g, h, lam = grad[live], hess[live], damping[live]
        scale = np.maximum(np.abs(np.diagonal(h, axis1=-2, axis2=-1)), 1e-300)
        haa, hab, hbb = h[:, 0, 0] + lam * scale[:, 0], h[:, 0, 1], h[:, 1, 1] + lam * scale[:, 1]
        det = haa * hbb - hab * hab
        with np.errstate(divide="ignore", invalid="ignore"):
            da = -(hbb * g[:, 0] - hab * g[:, 1]) / det
            db = -(haa * g[:, 1] - hab * g[:, 0]) / det
        a_new, b_new = a[live] + da, b[live] + db
        ok = np.isfinite(a_new) & np.isfinite(b_new) & (a_new > 0)
        new_loss = np.full(live.size, np.inf)
        new_grad, new_hess = np.zeros((live.size, 2)), np.zeros((live.size, 2, 2))
        if ok.any():
            new_loss[ok], new_grad[ok], new_hess[ok] = _loss_grad_hess(
                a_new[ok], b_new[ok], s[live][ok], p[live][ok])
        old = loss[live]
        accept = new_loss < old
        idx = live[accept]
        a[idx], b[idx] = a_new[accept], b_new[accept]
        loss[idx], grad[idx], hess[idx] = new_loss[accept], new_grad[accept], new_hess[accept]
        damping[live] = np.where(accept, lam / 4, lam * 4)
        small_step = (np.abs(da) <= 1e-10 * np.abs(a[live])) & (np.abs(db) <= 1e-10 * (np.abs(b[live]) + a[live] * s[live]))
        done = (accept & (lam < 1e-2) & (old - new_loss <= 1e-13 * new_loss)) | small_step | (lam > 1e10)
        live = live[~done]
    return a, b, loss


@dataclass(frozen=True)
class SymmetricOptimum:
    """Minimiser of Eq. (8) at each (p, r) (arrays of the broadcast shape, or numpy floats).

    loss: L*; a: a*; b: effective bias b*; beta: threshold in noise stds, -b*/(a* s);
    sigma: interference std a* s at the optimum.
    """

    loss: np.ndarray
    a: np.ndarray
    b: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray


_GRID_A = np.array([0.03, 0.1, 0.3, 0.6, 0.9, 1.1, 1.3, 1.6])
_GRID_BETA = np.array([-2.0, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5])


def optimal_loss_at_noise(feature_prob: ArrayLike, noise_std: ArrayLike) -> SymmetricOptimum:
    """min over a >= 0, b of L(a, b, a noise_std; p), broadcast over feature_prob and noise_std (>= 0).

    noise_std is the interference std per unit diagonal; Eq. (8) is noise_std = s(p, r). Starts:
    the linear solution a = v/(v + noise_std^2), b = (p/2)(1 - a), and the two best points of a coarse
    (a, beta) grid (a in 0.03..1.6, beta = -b/(a noise_std) in -2..6.5); the best of three
    Levenberg-Marquardt runs is kept. noise_std = 0 gives L* = 0 at a = 1, b = 0 (beta nan).
    """
    p = _unit("feature_prob", feature_prob)
    s = _nonneg("noise_std", noise_std)
    p, s = np.broadcast_arrays(p, s)
    shape = p.shape
    p, s = p.ravel().copy(), s.ravel().copy()
    loss, a, b = np.zeros_like(p), np.ones_like(p), np.zeros_like(p)
    noisy = np.flatnonzero(s > 0)
    if noisy.size:
        pp, ss = p[noisy], s[noisy]
        v = feature_variance(pp)
        a_lin = v / (v + ss * ss)
        starts_a, starts_b = [a_lin], [pp / 2 * (1 - a_lin)]
        ga, gb = np.meshgrid(_GRID_A, _GRID_BETA, indexing="ij")
        ga, gb = ga.ravel(), gb.ravel()
        coarse = _loss(ga[None, :], -ga[None, :] * ss[:, None] * gb[None, :],
                       ga[None, :] * ss[:, None], pp[:, None] * np.ones_like(ga)[None, :])
        best = np.argsort(coarse, axis=1)[:, :2]
        for k in range(best.shape[1]):
            ak = ga[best[:, k]]
            starts_a.append(ak)
            starts_b.append(-ak * ss * gb[best[:, k]])
        n_starts = len(starts_a)
        res_a, res_b, res_l = _minimise(np.concatenate(starts_a), np.concatenate(starts_b),
                                        np.tile(ss, n_starts), np.tile(pp, n_starts))
        res_a, res_b, res_l = (x.reshape(n_starts, -1) for x in (res_a, res_b, res_l))
        pick = np.argmin(res_l, axis=0)
        cols = np.arange(noisy.size)
        loss[noisy], a[noisy], b[noisy] = res_l[pick, cols], res_a[pick, cols], res_b[pick, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(s > 0, -b / (a * s), np.nan)
    fields = (loss, a, b, beta, a * s)
    return SymmetricOptimum(*(_out(x.reshape(shape)) for x in fields))


def optimal_symmetric_loss(feature_prob: ArrayLike, ratio: ArrayLike) -> SymmetricOptimum:
    """L*(p, r) = min_{a >= 0, b} L(a, b, a s(p, r); p), Eq. (8), broadcast over feature_prob, ratio.

    Returns a ``SymmetricOptimum`` with fields loss, a, b (effective bias), beta = -b/(a s), sigma.
    Always L* <= v(p)(1 - r) (the linear solution is inside the ansatz); r = 1 gives L* = 0.
    Example: optimal_symmetric_loss(0.045, 0.25).loss ~ 4.856e-3 (a ~ 1.289, b ~ -0.446).
    """
    return optimal_loss_at_noise(feature_prob, min_interference_std(feature_prob, ratio))


# ----------------------------------------------------------------------------- rank bound (6)
def rank_bound_ratio(W_eff: ArrayLike, d_hidden: int):
    """Mean off-diagonal row norm^2 over its rank-bound minimum a^2 (n/m - 1), a = mean diagonal.

    W_eff: (n, n) or (k, n, n) (leading instances axis; torch tensors accepted) -> float or (k,).
        ratio = [(1/n) sum_i sum_{j != i} W_ij^2] / [a^2 (n / d_hidden - 1)],   a = (1/n) tr W.
    For rank W <= d_hidden and an equal diagonal, ratio >= 1 (from ||W||_F^2 >= (tr W)^2 / rank W),
    with equality iff W = (a/r) Pi, Pi an orthogonal projector of rank d_hidden with Pi_ii = r (7).
    (With an unequal diagonal the ratio can fall below 1.) Computed in float64 whatever W's dtype.
    """
    if isinstance(W_eff, torch.Tensor):
        W_eff = W_eff.detach().cpu().double().numpy()
    W = np.asarray(W_eff, dtype=np.float64)
    if W.ndim not in (2, 3) or W.shape[-1] != W.shape[-2]:
        raise ValueError(f"W_eff must have shape (n, n) or (k, n, n), got {W.shape}")
    n = W.shape[-1]
    if isinstance(d_hidden, bool) or not isinstance(d_hidden, int | np.integer) or not 1 <= d_hidden < n:
        raise ValueError(f"d_hidden must be an integer in [1, {n - 1}], got {d_hidden!r}")
    diag = np.diagonal(W, axis1=-2, axis2=-1)
    off = (np.sum(W * W, axis=(-2, -1)) - np.sum(diag * diag, axis=-1)) / n
    a = diag.mean(axis=-1)
    return _out(off / (a * a * (n / d_hidden - 1)))


def equalise_diagonal(W: torch.Tensor, a: float = 1.0) -> torch.Tensor:
    """Rescale each row of W (..., n, n) so that every diagonal entry equals a; rank is unchanged."""
    return W * (a / torch.diagonal(W, dim1=-2, dim2=-1))[..., :, None]


def random_low_rank(n_features: int, d_hidden: int, n_instances: int,
                    generator: torch.Generator) -> torch.Tensor:
    """W = A B with Gaussian A (n, m), B (m, n): a generic rank-m matrix; shape (k, n, n), float64."""
    projectors.check_sizes(n_features, d_hidden, n_instances)
    kw = dict(generator=generator, dtype=torch.float64)
    A = torch.randn(n_instances, n_features, d_hidden, **kw)
    return A @ torch.randn(n_instances, d_hidden, n_features, **kw)


def rank_bound_experiment(sizes: list[int], ratio: float, n_matrices: int, a: float,
                          generator: torch.Generator) -> pd.DataFrame:
    """Bound (6) on four families of rank-m matrices (m = ``model.hidden_width(n, ratio)``) with
    diagonal equalised to a.

    Families (Gaussian A (n, m), B (m, n); every row rescaled so that W_ii = a): "Gaussian A B";
    "Wishart A A^T"; "projector, rows rescaled" (U U^T with Gaussian-drawn orthonormal U,
    Pi_ii ~ r); "Hadamard projector" ((a/r) H_S^T H_S / n, diagonal exactly a; n must be a power
    of 2). Projectors from ``projectors.random_projector``.
    Returns one row per (n, family): n, family, ratio_min, ratio_mean, ratio_max.
    """
    checks.unit_interval("ratio", ratio)
    rows = []
    for n in sizes:
        m = hidden_width(n, ratio)
        low_rank = random_low_rank(n, m, n_matrices, generator)
        A = torch.randn(n_matrices, n, m, generator=generator, dtype=torch.float64)
        families = {
            "Gaussian A B": equalise_diagonal(low_rank, a),
            "Wishart A A^T": equalise_diagonal(A @ A.transpose(-2, -1), a),
            "projector, rows rescaled": equalise_diagonal(
                projectors.random_projector(n, m, n_matrices, generator, kind="gaussian"), a),
            "Hadamard projector": a * n / m * projectors.random_projector(n, m, n_matrices, generator,
                                                                          kind="hadamard"),
        }
        for family, W in families.items():
            values = np.asarray(rank_bound_ratio(W, m))
            rows.append({"n": n, "family": family, "ratio_min": values.min(),
                         "ratio_mean": values.mean(), "ratio_max": values.max()})
    return pd.DataFrame(rows)


def rank_bound_summary(table: pd.DataFrame) -> dict:
    """What the rank-bound check reads off ``rank_bound_experiment``'s table: ``lowest`` (smallest
    ratio of any matrix), ``hadamard_err`` (worst |ratio - 1| of the Hadamard projectors) and
    ``excess`` (mean ratio - 1 of the rescaled random projectors, a Series indexed by n)."""
    hadamard = table[table["family"] == "Hadamard projector"]
    return dict(lowest=table["ratio_min"].min(),
                hadamard_err=max((hadamard["ratio_max"] - 1).abs().max(),
                                 (hadamard["ratio_min"] - 1).abs().max()),
                excess=table[table["family"] == "projector, rows rescaled"].set_index("n")["ratio_mean"] - 1)


def noise_elasticity(feature_prob: ArrayLike, optimum: SymmetricOptimum):
    """d ln L*/d ln s at the optimum of (8): by the envelope theorem sigma* dL/dsigma / L*.

    Positive means the least interference allowed by the rank bound (6) is optimal; it tends to 2 as
    p -> 0 (L* ~ s^2). ``optimum`` is the result of ``optimal_symmetric_loss(feature_prob, ratio)``.
    """
    slope = dloss_dsigma(optimum.a, optimum.b, optimum.sigma, feature_prob)
    return _out(np.asarray(optimum.sigma * slope / optimum.loss))


def loss_vs_noise(feature_prob: ArrayLike, ratio: ArrayLike, optimum: SymmetricOptimum,
                  factors: ArrayLike) -> np.ndarray:
    """L* re-optimised with the interference inflated to lambda s(p, r), for lambda = 1 (``optimum``,
    the result of ``optimal_symmetric_loss(feature_prob, ratio)``) and each of ``factors``.

    Shape: the broadcast shape of (p, r) plus a last axis of 1 + len(factors). If minimal
    interference is optimal, the loss increases along the last axis (factors increasing, > 1)."""
    s = np.asarray(min_interference_std(feature_prob, ratio))[..., None]
    inflated = optimal_loss_at_noise(np.asarray(feature_prob)[..., None], np.asarray(factors) * s)
    return np.concatenate([np.asarray(optimum.loss)[..., None], inflated.loss], axis=-1)


def reference_errors(reference: dict[tuple[float, float], float]) -> pd.DataFrame:
    """L* at each (p, r) of ``reference`` ({(p, r): expected L*}) against the expected value.
    Columns: p, r, measured, expected, rel_err = measured / expected - 1."""
    points = np.array(list(reference))
    table = pd.DataFrame({"p": points[:, 0], "r": points[:, 1],
                          "measured": optimal_symmetric_loss(points[:, 0], points[:, 1]).loss,
                          "expected": list(reference.values())})
    table["rel_err"] = table["measured"] / table["expected"] - 1
    return table


def ratio_to_linear(feature_prob: ArrayLike, ratio: ArrayLike, loss: ArrayLike, *,
                    min_ratio: float = 0.05) -> np.ndarray:
    """L / v(p)(1 - r) at every point with r >= min_ratio, flattened; p, r, loss broadcast together.
    Below 1 everywhere means the loss beats the best linear autoencoder (R12)."""
    p, r, loss = np.broadcast_arrays(np.asarray(feature_prob), np.asarray(ratio), np.asarray(loss))
    keep = r >= min_ratio
    return loss[keep] / linear_loss(p[keep], r[keep])


def crossover_loss(feature_prob: ArrayLike, kappa: float):
    """L*/(p/3) at r = kappa p ln(1/p) (``crossover_ratio``): about 1 for kappa << 1, falls past 1."""
    p = np.asarray(feature_prob)
    return optimal_symmetric_loss(p, crossover_ratio(p, kappa)).loss / (p / 3)


# ----------------------------------------------------------------------------- high sparsity (R10)
def high_sparsity_loss(feature_prob: ArrayLike, ratio: ArrayLike):
    """Leading asymptote of L* for p -> 0 at fixed r: (p^2/6) ((1 - r)/r) ln(1/p)."""
    p, r = _unit("feature_prob", feature_prob), _unit("ratio", ratio)
    return _out(p * p / 6 * (1 - r) / r * np.log(1 / p))


def high_sparsity_upper_bound(feature_prob: ArrayLike, ratio: ArrayLike):
    """Explicit upper bound on L*: Eq. (5) at a = 1, b = -sigma sqrt(2 ln(1/p)), sigma = s(p, r)."""
    p, r = _unit("feature_prob", feature_prob), _unit("ratio", ratio)
    p, r = np.broadcast_arrays(p, r)
    sigma = np.asarray(min_interference_std(p, r))
    return _out(_loss(np.ones_like(p), -sigma * np.sqrt(2 * np.log(1 / p)), sigma, p))


def high_sparsity_upper_bound_asymptote(feature_prob: ArrayLike, ratio: ArrayLike):
    """Small-p form of ``high_sparsity_upper_bound``: p s^2 (1 + 2 ln(1/p)), s = s(p, r)."""
    p, r = _unit("feature_prob", feature_prob), _unit("ratio", ratio)
    return _out(p * feature_variance(p) * (1 - r) / r * (1 + 2 * np.log(1 / p)))


def crossover_ratio(feature_prob: ArrayLike, kappa: ArrayLike):
    """r = kappa p ln(1/p): the width ratio in units of the crossover scale of R1/R10 (p < 1)."""
    p = _unit("feature_prob", feature_prob)
    kappa = _nonneg("kappa", kappa, strict=True)
    if np.any(p >= 1):
        raise ValueError(f"feature_prob must lie in (0, 1) for the crossover scale, got {np.max(p)!r}")
    return _out(kappa * p * np.log(1 / p))


def high_sparsity_table(feature_probs: ArrayLike, ratios: ArrayLike) -> pd.DataFrame:
    """One row per (p, r): L*, L*/(p s^2), beta*, a*, (1/2) ln(1/p), L*/asymptote, bound/asymptote.

    Columns: p, r, loss, loss_over_ps2, beta, a, half_log, asymptote (``high_sparsity_loss``),
    ratio_to_asymptote (L* over it), upper_bound (``high_sparsity_upper_bound``), bound_ratio (upper bound
    over its asymptote p s^2 (1 + 2 ln(1/p))).
    """
    P, R = np.meshgrid(_unit("feature_probs", feature_probs).ravel(), _unit("ratios", ratios).ravel(),
                       indexing="ij")
    P, R = P.ravel(), R.ravel()
    opt = optimal_symmetric_loss(P, R)
    s2 = feature_variance(P) * (1 - R) / R
    bound = high_sparsity_upper_bound(P, R)
    asymptote = high_sparsity_loss(P, R)
    return pd.DataFrame({
        "p": P, "r": R, "loss": opt.loss, "loss_over_ps2": opt.loss / (P * s2), "beta": opt.beta,
        "a": opt.a, "half_log": 0.5 * np.log(1 / P), "asymptote": asymptote,
        "ratio_to_asymptote": opt.loss / asymptote,
        "upper_bound": bound, "bound_ratio": bound / high_sparsity_upper_bound_asymptote(P, R)})


HIGH_SPARSITY_COLUMNS = ("loss", "loss_over_ps2", "beta", "a")   # the spec's R10 table, in order
SPEC_R10 = {  # spec persian_rug.md R10: (p, r) -> (L*, L*/(p s^2), beta*, a*), the reference values
    (1e-2, 0.1): (9.963e-4, 3.35, 2.27, 1.525), (1e-3, 0.1): (1.155e-5, 3.85, 2.90, 1.263),
    (1e-4, 0.1): (1.352e-7, 4.51, 3.43, 1.093), (1e-5, 0.1): (1.610e-9, 5.37, 3.94, 1.033),
    (1e-6, 0.1): (1.897e-11, 6.32, 4.41, 1.012), (1e-8, 0.1): (2.510e-15, 8.37, 5.26, 1.001),
    (1e-2, 0.3): (2.319e-4, 3.00, 2.24, 1.309), (1e-3, 0.3): (2.809e-6, 3.61, 2.86, 1.126),
    (1e-4, 0.3): (3.430e-8, 4.41, 3.42, 1.046), (1e-5, 0.3): (4.143e-10, 5.33, 3.93, 1.017),
    (1e-6, 0.3): (4.906e-12, 6.31, 4.41, 1.006),
}


def high_sparsity_errors(table: pd.DataFrame,
                         reference: dict[tuple[float, float], tuple[float, ...]] = SPEC_R10) -> np.ndarray:
    """|measured / expected - 1| of ``HIGH_SPARSITY_COLUMNS`` at each (p, r) of ``reference``
    ({(p, r): (L*, L*/(p s^2), beta*, a*)}, default the spec's), read from ``high_sparsity_table``'s
    ``table``, which must hold those (p, r): shape (len(reference), 4)."""
    got = table.set_index(["p", "r"]).loc[list(reference), list(HIGH_SPARSITY_COLUMNS)].to_numpy()
    return np.abs(got / np.array(list(reference.values())) - 1)


def high_sparsity_slopes(table: pd.DataFrame, *, power_below: float = 1e-4,
                         log_below: float = 1e-6) -> pd.DataFrame:
    """Scaling exponents of ``high_sparsity_table``'s rows, one row per r.

    Columns: r; "slope of L* (p <= 1e-4)" and "slope of asymptote", log-log slopes against p
    (``fits.power_law``) over p <= power_below; "slope vs ln(1/p) (p <= 1e-6)", the least-squares
    slope of L*/(p^2 (1 - r)/r) against ln(1/p) over p <= log_below (1/6 in the limit). The column
    names quote the default cut-offs. Needs at least two p per r below each cut."""
    small = table[table["p"] <= power_below]
    slopes = pd.DataFrame([{
        "r": r,
        "slope of L* (p <= 1e-4)": fits.power_law(rows["p"], rows["loss"]).slope,
        "slope of asymptote": fits.power_law(rows["p"], rows["asymptote"]).slope,
    } for r, rows in small.groupby("r")])
    slopes["slope vs ln(1/p) (p <= 1e-6)"] = [
        np.polyfit(np.log(1 / rows["p"]), rows["loss"] / (rows["p"] ** 2 * (1 - r) / r), 1)[0]
        for r, rows in table[table["p"] <= log_below].groupby("r")]
    return slopes


# ----------------------------------------------------------------------------- Monte Carlo of (5)
def scalar_channel_loss_mc(a: float, b: float, sigma: float, feature_prob: float, n_samples: int,
                           generator: torch.Generator) -> tuple[float, float]:
    """Monte-Carlo estimate of Eq. (5) from the scalar model y = ReLU(a x + b + sigma Z).

    x = B U with B ~ Bernoulli(p), U ~ U[0, 1], Z ~ N(0, 1), all float64 from ``generator`` (drawn
    in that order: U, then B, then Z). The one Monte Carlo of the scalar channel.
    Returns (mean of (y - x)^2, its standard error).
    """
    _unit("feature_prob", feature_prob)
    _nonneg("a", a), _finite("b", b), _nonneg("sigma", sigma)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer in [2, inf], got {n_samples!r}")
    kw = dict(generator=generator, dtype=torch.float64)
    x = torch.rand(n_samples, **kw) * (torch.rand(n_samples, **kw) < feature_prob)
    y = torch.relu(a * x + b + sigma * torch.randn(n_samples, **kw))
    err = (y - x) ** 2
    return float(err.mean()), float(err.std() / math.sqrt(n_samples))


def eq5_vs_monte_carlo(n_points: int, n_samples: int, generator: torch.Generator) -> pd.DataFrame:
    """Eq. (5) against ``scalar_channel_loss_mc`` at n_points random (a, b, sigma, p).

    a ~ U[0.3, 1.6], b ~ U[-0.5, 0.3], sigma = 10^U[-2, -0.3], p = 10^U[-1.5, -0.1], drawn from
    ``generator``. Columns: a, b, sigma, p, eq5, mc, stderr, z = (mc - eq5) / stderr.
    """
    checks.positive_int("n_points", n_points)
    u = torch.rand(n_points, 4, generator=generator, dtype=torch.float64).numpy()
    a, b = 0.3 + 1.3 * u[:, 0], -0.5 + 0.8 * u[:, 1]
    sigma, p = 10 ** (-2 + 1.7 * u[:, 2]), 10 ** (-1.5 + 1.4 * u[:, 3])
    mc = [scalar_channel_loss_mc(*args, n_samples, generator) for args in zip(a, b, sigma, p)]
    table = pd.DataFrame({"a": a, "b": b, "sigma": sigma, "p": p,
                          "eq5": symmetric_loss(a, b, sigma, p),
                          "mc": [m for m, _ in mc], "stderr": [se for _, se in mc]})
    table["z"] = (table["mc"] - table["eq5"]) / table["stderr"]
    return table
