"""The Persian rug (Cowsik, Dolev, Infanger 2024, §4.2.2): forward-engineered weights at the optimum.

Construction (spec R8), for n = 2^K features and m hidden units:

    H_ki = (−1)^popcount(k & i)            Sylvester–Hadamard matrix, (n, n), H = Hᵀ, H² = n·I
    W_in = H_S   (m, n),  S a random set of m row indices;   W_out = (a/m) H_Sᵀ   (n, m)
    y = ReLU(a (R x + shift·1)),   R = (1/m) H_Sᵀ H_S   (n, n),   output bias b = a·shift

R is symmetric with R_ii = 1 and R² = R/r (r = m/n), every row has Σ_{j≠i} R_ij² = (1 − r)/r, and
R_ij = R_{0, i⊕j} (it depends on the bitwise XOR of i and j only), which draws the rug. Only the two
scalars (a, shift) are fitted.

H_S comes from ``projectors.hadamard_rows`` (the random projector Π/r it is compared with, from
``projectors.random_projector``). The forward pass never builds H: R x = (1/m) H (1_S ⊙ (H x)) is two fast Walsh–Hadamard transforms,
O(n log n) per input instead of O(n m).

Losses are per feature, L = (1/n) E‖y − x‖² (Eq. 2), estimated by Monte Carlo on samples of
x_i = B_i U_i, B_i ~ Bernoulli(p), U_i ~ U[0, 1] (``toysup.data``); the standard error is taken
over independent samples. (a, shift) are fitted on one sample and the loss is evaluated on a fresh
one.

Paper → code: n_s → ``n_features``, n_d → ``d_hidden``, a → ``a``, the code's scalar ``mean`` →
``shift``. Shapes: x, z = R x, y: (batch, n); ``rows``: (m,) int64; R, W: (n, n).
"""
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize
from torch import Tensor

from toysup import checks
from toysup.persian_rug import stats, theory
from toysup.persian_rug.data import sample_features
from toysup.persian_rug.evaluate import LossAccumulator
from toysup.persian_rug.model import hidden_width
from toysup.persian_rug.projectors import check_rows, hadamard_rows, power_of_two, random_rows

LinearMap = Callable[[Tensor], Tensor]


def fwht(x: Tensor) -> Tensor:
    """Unnormalised fast Walsh–Hadamard transform along the last axis: (…, n) → (…, n).

    Returns H x for every vector x, with H the Sylvester–Hadamard matrix (``scipy.linalg.hadamard``
    order, H_ki = (−1)^popcount(k & i)); n must be a power of two. Stage j applies the 2 × 2
    butterfly (u, v) → (u + v, u − v) to bit j of the index: log₂ n stages, O(n log n) per vector.
    fwht(fwht(x)) = n·x.
    """
    n = x.shape[-1] if x.dim() else 0
    power_of_two("x.shape[-1]", n)
    lead = x.shape[:-1]
    y = x.reshape(-1, n).clone()
    buffer = torch.empty_like(y)
    half = 1
    while half < n:
        src = y.view(-1, n // (2 * half), 2, half)
        dst = buffer.view(-1, n // (2 * half), 2, half)
        torch.add(src[:, :, 0], src[:, :, 1], out=dst[:, :, 0])
        torch.sub(src[:, :, 0], src[:, :, 1], out=dst[:, :, 1])
        y, buffer = buffer, y
        half *= 2
    return y.view(*lead, n)


def choose_rows(n_features: int, d_hidden: int, generator: torch.Generator, *,
                exclude_constant: bool = False) -> Tensor:
    """The row set S: ``d_hidden`` distinct indices of {0, …, n − 1}, uniformly at random, sorted.

    ``exclude_constant`` draws from {1, …, n − 1}, leaving out row 0 of H (all ones). That row adds
    1/m to every entry of R (all row sums become n/m instead of 0), which skews the interference to
    the right; the authors' code draws from all rows (the default here).
    """
    power_of_two("n_features", n_features)
    first = 1 if exclude_constant else 0
    checks.positive_int("d_hidden", d_hidden, maximum=n_features - first)
    return (first + random_rows(n_features - first, d_hidden, 1, generator)[0]).sort().values


def rug_weights(n_features: int, rows: Tensor, a: float = 1.0,
                dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """(W_in, W_out) = (H_S, (a/m) H_Sᵀ), shapes (m, n) and (n, m)."""
    W_in = hadamard_rows(n_features, rows, dtype)
    return W_in, (a / W_in.shape[0]) * W_in.T


def rug_matrix(n_features: int, rows: Tensor) -> Tensor:
    """R = (1/m) H_Sᵀ H_S, (n, n) in float64 (dense: for pictures and tests, n ≤ 4096)."""
    if n_features > 4096:
        raise ValueError(f"n_features must be at most 4096 for the dense matrix, got {n_features}; "
                         "use rug_apply")
    W_in, W_out = rug_weights(n_features, rows)
    return W_out @ W_in


def rug_apply(x: Tensor, rows: Tensor) -> Tensor:
    """R x along the last axis via two FWHTs: (1/m) H (1_S ⊙ H x).  (…, n) → (…, n)."""
    n = x.shape[-1] if x.dim() else 0
    rows = check_rows(n, rows)
    keep = torch.zeros(n, dtype=x.dtype, device=x.device)
    keep[rows.to(x.device)] = 1.0
    return fwht(fwht(x) * keep) / rows.numel()


def rug_forward(x: Tensor, rows: Tensor, a: float, shift: float) -> Tensor:
    """y = ReLU(a (R x + shift·1)): the rug autoencoder, (…, n) → (…, n)."""
    return torch.relu(a * (rug_apply(x, rows) + shift))


@dataclass(frozen=True)
class LossEstimate:
    """Monte-Carlo per-feature loss: mean over samples and its standard error."""

    loss: float
    stderr: float
    n_samples: int


def _sample_batches(n_features: int, feature_prob: float, n_samples: int,
                    generator: torch.Generator, chunk: int):
    """Yield x in chunks of at most ``chunk`` samples, (batch, n) float32."""
    p = torch.tensor([feature_prob], dtype=torch.float64)
    done = 0
    while done < n_samples:
        batch = min(chunk, n_samples - done)
        yield sample_features(p, batch, n_features, [generator])[:, 0]
        done += batch


def _chunk(n_features: int) -> int:
    return max(1, 2 ** 21 // n_features)      # about 2M entries (8 MB) per chunk


def _estimate(per_sample_batches: Iterable[Tensor]) -> LossEstimate:
    """Mean and standard error of per-sample losses arriving in (batch,) chunks
    (``evaluate.LossAccumulator``)."""
    accumulator = LossAccumulator(1)
    for per_sample in per_sample_batches:
        accumulator.add(per_sample[None])
    return LossEstimate(accumulator.mean().item(), accumulator.stderr().item(), accumulator.count)


def affine_relu_loss(W: Tensor, b: Tensor, feature_prob: float, n_samples: int,
                     generator: torch.Generator) -> LossEstimate:
    """Loss of y = ReLU(W x + b) (e.g. a trained W = W_out W_in, (n, n), b (n,)) on fresh samples."""
    n = W.shape[-1]
    checks.positive_int("n_samples", n_samples)
    checks.unit_interval("feature_prob", feature_prob)
    if W.shape != (n, n) or b.shape != (n,):
        raise ValueError(f"W must be (n, n) and b (n,), got {tuple(W.shape)} and {tuple(b.shape)}")
    Wt, bias = W.T.float(), b.float()
    return _estimate(((torch.relu(x @ Wt + bias) - x) ** 2).mean(dim=1)
                     for x in _sample_batches(n, feature_prob, n_samples, generator, _chunk(n)))


class _ReadoutObjective:
    """L(a, shift) = mean over entries of (ReLU(a (z + shift)) − x)² on a fixed sample, exact and
    cheap: inactive entries (x = 0) contribute a² Σ_{z > −shift} (z + shift)², read off prefix sums
    of their z sorted in decreasing order; active entries are summed directly."""

    def __init__(self, z: Tensor, x: Tensor) -> None:
        z, x = z.reshape(-1).double(), x.reshape(-1).double()
        active = x != 0
        self.count = z.numel()
        self.z_on, self.x_on = z[active].numpy(), x[active].numpy()
        z_off = np.sort(z[~active].numpy())[::-1]
        self.neg_off = -z_off                         # increasing, for searchsorted
        self.sum1 = np.concatenate([[0.0], np.cumsum(z_off)])
        self.sum2 = np.concatenate([[0.0], np.cumsum(z_off ** 2)])

    def __call__(self, a: float, shift: float) -> float:
        k = np.searchsorted(self.neg_off, shift, side="left")    # entries with z > −shift
        off = a * a * (self.sum2[k] + 2 * shift * self.sum1[k] + k * shift * shift)
        on = np.sum((np.maximum(a * (self.z_on + shift), 0.0) - self.x_on) ** 2)
        return float((off + on) / self.count)


@dataclass(frozen=True)
class ReadoutFit:
    """Fitted y = ReLU(a (M x + shift)) of a fixed linear map M: parameters, the loss on the fitting
    sample, and the loss on a fresh evaluation sample."""

    a: float
    shift: float
    fit_loss: float
    loss: LossEstimate


def _start_shift(z: Tensor, x: Tensor, a0: float, bias0: float) -> float:
    """shift such that a0·(shift + E[z_i − x_i]) = bias0, the mean measured on the sample."""
    return bias0 / a0 - float((z - x).double().mean())


def _fit_on_sample(z: Tensor, x: Tensor, a0: float, bias0: float) -> tuple[float, float, float]:
    """Nelder-Mead over (log a, shift) of the exact sample loss; returns (a, shift, loss)."""
    objective = _ReadoutObjective(z, x)
    best = minimize(lambda v: objective(math.exp(v[0]), v[1]),
                    [math.log(a0), _start_shift(z, x, a0, bias0)],
                    method="Nelder-Mead", options=dict(xatol=1e-6, fatol=1e-12, maxiter=2000))
    return math.exp(best.x[0]), float(best.x[1]), float(best.fun)


def _evaluate(linear_map: LinearMap, a: float, shift: float, n_features: int, feature_prob: float,
              n_eval: int, generator: torch.Generator) -> LossEstimate:
    return _estimate(((torch.relu(a * (linear_map(x) + shift)) - x) ** 2).mean(dim=1)
                     for x in _sample_batches(n_features, feature_prob, n_eval, generator,
                                              _chunk(n_features)))


def _fit_sample(n_features: int, feature_prob: float, n_fit: int,
                generator: torch.Generator) -> Tensor:
    return torch.cat(list(_sample_batches(n_features, feature_prob, n_fit, generator,
                                          _chunk(n_features))))


def _check_fit(n_fit: int, n_eval: int, feature_prob: float, a0: float) -> None:
    """The arguments shared by ``fit_readout`` and ``fit_rug``."""
    checks.positive_int("n_fit", n_fit)
    checks.positive_int("n_eval", n_eval)
    checks.unit_interval("feature_prob", feature_prob)
    if not a0 > 0:
        raise ValueError(f"a0 must be > 0, got {a0!r}")


def fit_readout(linear_map: LinearMap, n_features: int, feature_prob: float, *, a0: float,
                bias0: float, n_fit: int, n_eval: int, generator: torch.Generator) -> ReadoutFit:
    """Fit (a, shift) of y = ReLU(a (z + shift)), z = linear_map(x), then evaluate on fresh data.

    Start: a = a0 and effective bias a0·(shift + E[z_i − x_i]) = bias0 (e.g. the analytic optimum
    a*, b*; the interference mean E[z_i − x_i] is measured on the fitting sample). Nelder-Mead over
    (log a, shift) on ``n_fit`` samples, then the loss on ``n_eval`` fresh samples.
    linear_map: (batch, n) → (batch, n).
    """
    _check_fit(n_fit, n_eval, feature_prob, a0)
    x = _fit_sample(n_features, feature_prob, n_fit, generator)
    a, shift, fit_loss = _fit_on_sample(linear_map(x), x, a0, bias0)
    loss = _evaluate(linear_map, a, shift, n_features, feature_prob, n_eval, generator)
    return ReadoutFit(a, shift, fit_loss, loss)


@dataclass(frozen=True)
class RugFit:
    """A fitted rug: the row set S kept, its loss at the start (a0, bias0) on the fitting sample
    (the selection criterion among tries), the fitted (a, shift), their fitting-sample loss and the
    loss on fresh samples."""

    rows: Tensor
    start_loss: float
    a: float
    shift: float
    fit_loss: float
    loss: LossEstimate


def fit_rug(n_features: int, d_hidden: int, feature_prob: float, *, a0: float, bias0: float,
            n_fit: int, n_eval: int, generator: torch.Generator, n_tries: int = 1,
            exclude_constant: bool = False) -> RugFit:
    """The rug at (n, m, p): draw ``n_tries`` row sets S, keep the one with the lowest loss at the
    start (a0, bias0) on a common fitting sample (the authors kept the best of 5 trained tries),
    fit (a, shift) on that sample and evaluate on ``n_eval`` fresh samples. ``exclude_constant``:
    see ``choose_rows``."""
    checks.positive_int("n_tries", n_tries)
    _check_fit(n_fit, n_eval, feature_prob, a0)
    x = _fit_sample(n_features, feature_prob, n_fit, generator)
    best = None
    for _ in range(n_tries):
        rows = choose_rows(n_features, d_hidden, generator, exclude_constant=exclude_constant)
        z = rug_apply(x, rows)
        shift0 = _start_shift(z, x, a0, bias0)
        start_loss = float(((torch.relu(a0 * (z + shift0)) - x) ** 2).double().mean())
        if best is None or start_loss < best[0]:
            best = (start_loss, rows, z)
    start_loss, rows, z = best
    a, shift, fit_loss = _fit_on_sample(z, x, a0, bias0)
    loss = _evaluate(lambda batch: rug_apply(batch, rows), a, shift, n_features, feature_prob,
                     n_eval, generator)
    return RugFit(rows, start_loss, a, shift, fit_loss, loss)


def tolerance(pn: float) -> float:
    """Allowed |L_rug / L* − 1| (spec R9(a)): 3 % if p·n ≥ 80, 5 % if p·n ≥ 40, else none (NaN)."""
    return 0.03 if pn >= 80 else 0.05 if pn >= 40 else float("nan")


P_REFERENCE = 0.045


def samples_for(n_features: int, feature_prob: float, n_entries: int) -> int:
    """Samples holding about n_entries·max(1, P_REFERENCE/p) feature entries.

    The loss at small p is set by rare false positives, so the sample grows like 1/p below
    p = 0.045 (spec §7: at least 1e5·(0.01/p) entries; n_entries = 2^21 gives 9.4e6 at p = 0.01).
    """
    checks.positive_int("n_features", n_features)
    checks.unit_interval("feature_prob", feature_prob)
    checks.positive_int("n_entries", n_entries)
    return max(2, math.ceil(n_entries * max(1.0, P_REFERENCE / feature_prob) / n_features))


def rug_vs_theory(points: Sequence[tuple[float, float]], ns: Sequence[int], *,
                  generator: torch.Generator, n_entries: int, n_tries: int = 1,
                  exclude_constant: bool = False) -> pd.DataFrame:
    """Rug Monte-Carlo loss against L*(p, r) for every (p, r) in ``points`` and n in ``ns``.

    d_hidden = ⌊r n⌋ (as the paper's code) and L* is taken at the realised r = d_hidden/n. For each
    case ``fit_rug`` keeps the best of ``n_tries`` fresh row sets S, fits (a, shift) on
    ``samples_for(n, p, n_entries)`` samples and evaluates the loss on as many fresh ones. One row per (p, r, n) with columns
    p, r_target, n, d_hidden, r, pn, loss, stderr, L_star, a_star, b_star, ratio = loss/L*,
    ratio_se, tolerance (see ``tolerance``), a, shift, row0 (whether 0 ∈ S), the effective bias
    bias_eff = a·(shift + μ), μ = (p/2)(Σ_j R_ij − 1) (compare with b_star).
    """
    optima = {}   # L* once per distinct (p, realised r)
    rows_out = []
    for p, r_target in points:
        for n in ns:
            power_of_two("n_features", n)
            d_hidden = hidden_width(n, r_target)
            r = d_hidden / n
            if (p, r) not in optima:
                optima[(p, r)] = theory.optimal_symmetric_loss(p, r)
            opt = optima[(p, r)]
            n_samples = samples_for(n, p, n_entries)
            fit = fit_rug(n, d_hidden, p, a0=float(opt.a), bias0=float(opt.b), n_fit=n_samples,
                          n_eval=n_samples, generator=generator, n_tries=n_tries,
                          exclude_constant=exclude_constant)
            rows = fit.rows
            mean_interference = p / 2 * (n / d_hidden * float(0 in rows.tolist()) - 1)
            L_star = float(opt.loss)
            rows_out.append(dict(
                p=p, r_target=r_target, n=n, d_hidden=d_hidden, r=r, pn=p * n,
                loss=fit.loss.loss, stderr=fit.loss.stderr, L_star=L_star,
                a_star=float(opt.a), b_star=float(opt.b), ratio=fit.loss.loss / L_star,
                ratio_se=fit.loss.stderr / L_star, tolerance=tolerance(p * n), a=fit.a,
                shift=fit.shift, row0=0 in rows.tolist(),
                bias_eff=fit.a * (fit.shift + mean_interference)))
    return pd.DataFrame(rows_out)


def xor_residual(W: Tensor) -> float:
    """max_ij |W_ij − W_{0, i⊕j}| for a square W (n, n), n a power of two, in float64: zero exactly
    when W's entries depend on i ⊕ j alone (the rug's pattern, spec R13)."""
    W = W.double()
    n = W.shape[-1]
    if W.shape != (n, n):
        raise ValueError(f"W must be square (n, n), got {tuple(W.shape)}")
    power_of_two("n_features", n)
    index = torch.arange(n)
    return float((W - W[0][index[:, None] ^ index[None, :]]).abs().max())


def construction_residuals(R: Tensor, d_hidden: int) -> pd.DataFrame:
    """Largest deviation from each exact property of the rug (spec R8), for R (n, n):

    R_ii = 1; R = Rᵀ; R² = R/r; Σ_{j≠i} R_ij² = (1 − r)/r for every row; all row sums equal
    (to (n/m)·1[0 ∈ S]); R_ij = R_{0, i⊕j}; m·R_ij integer. Columns: property, max_abs_error.
    """
    R = R.double()
    n = R.shape[-1]
    if R.shape != (n, n):
        raise ValueError(f"R must be square (n, n), got {tuple(R.shape)}")
    power_of_two("n_features", n)
    checks.positive_int("d_hidden", d_hidden, maximum=n)
    r = d_hidden / n
    diag = torch.diagonal(R)
    sums = R.sum(dim=1)
    checks_ = {
        "R_ii = 1": (diag - 1).abs().max(),
        "R = R^T": (R - R.T).abs().max(),
        "R^2 = R/r": (R @ R - R / r).abs().max(),
        "sum_{j!=i} R_ij^2 = (1-r)/r": ((R ** 2).sum(dim=1) - diag ** 2 - (1 - r) / r).abs().max(),
        "row sums equal": (sums - sums[0]).abs().max(),
        "row sum in {0, n/m}": torch.minimum(sums[0].abs(), (sums[0] - n / d_hidden).abs()),
        "R_ij = R_0,(i xor j)": xor_residual(R),
        "m R_ij integer": (R * d_hidden - torch.round(R * d_hidden)).abs().max(),
    }
    return pd.DataFrame({"property": list(checks_), "max_abs_error": [float(v) for v in checks_.values()]})


def matrix_statistics(W: Tensor, d_hidden: int) -> dict[str, float]:
    """Row statistics of W = W_out W_in (n, n), as in chapter 2 (spec §9.4), with ε = W − diag(W):

    diag_mean, diag_std (across rows); offdiag_norm2 = mean_i Σ_j ε_ij² / a² with a = mean diagonal,
    its across-row std ``offdiag_norm2_std``, the rank bound (1 − r)/r with r = d_hidden/n and their
    ratio ``bound_ratio`` (≥ 1, = 1 at the optimum; ``theory.rank_bound_ratio``); ``lyapunov``
    Λ = max_i Σ_j |ε_ij|³ / Σ_j ε_ij² (``stats.lyapunov_ratio``).
    """
    W = W.double()
    n = W.shape[-1]
    if W.shape != (n, n):
        raise ValueError(f"W must be square (n, n), got {tuple(W.shape)}")
    checks.positive_int("d_hidden", d_hidden, maximum=n - 1)
    diag = torch.diagonal(W)
    a = float(diag.mean())
    norm2 = (stats.off_diagonal(W[None])[0] ** 2).sum(dim=1) / a ** 2
    r = d_hidden / n
    return dict(diag_mean=a, diag_std=float(diag.std()), offdiag_norm2=float(norm2.mean()),
                offdiag_norm2_std=float(norm2.std()), bound=(1 - r) / r,
                bound_ratio=float(theory.rank_bound_ratio(W, d_hidden)),
                lyapunov=float(stats.lyapunov_ratio(W[None])[0]))
