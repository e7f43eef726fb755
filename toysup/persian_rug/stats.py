"""Statistics of W = W_out W_in (Persian Rug §4), vectorised over instances.

For output row i:  h_i = W_ii x_i + ν_i + b_i,  ν_i = Σ_{j≠i} W_ij x_j  (the interference),
μ_i = E ν_i = (p/2) Σ_{j≠i} W_ij,   σ_i² = Var ν_i = v(p) Σ_{j≠i} W_ij²,   b̃_i = b_i + μ_i (effective bias).
v(p) is ``theory.feature_variance``; the rank-bound ratio of Eq. (6) is ``theory.rank_bound_ratio``.
Finite-size diagnostics (spec R14): row i is *paired* if min_{j≠i} W_ij < −½ W_ii (an antipodal
partner), feature i is *dead* if W_ii < 0.1 · median_k W_kk.

Shapes: W (k, n, n), b (k, n), feature_prob (k,); per-row statistics (k, n); summaries (k,).
"""
import numpy as np
import scipy.stats
import pandas as pd
import torch
from torch import Tensor

from toysup import checks
from toysup.persian_rug.theory import feature_variance, rank_bound_ratio


def _check(W: Tensor) -> None:
    if W.dim() != 3 or W.shape[1] != W.shape[2]:
        raise ValueError(f"W must have shape (k, n, n), got {tuple(W.shape)}")


def off_diagonal(W: Tensor) -> Tensor:
    """W with its diagonal set to zero, (k, n, n)."""
    _check(W)
    return W - torch.diag_embed(torch.diagonal(W, dim1=1, dim2=2))


def mean_interference(W: Tensor, feature_prob: Tensor) -> Tensor:
    """μ_i = (p/2) Σ_{j≠i} W_ij, (k, n)."""
    p = checks.probabilities("feature_prob", feature_prob).to(W)
    return p[:, None] / 2 * off_diagonal(W).sum(dim=2)


def interference_variance(W: Tensor, feature_prob: Tensor) -> Tensor:
    """σ_i² = v(p) Σ_{j≠i} W_ij², v(p) = p/3 − p²/4, (k, n)."""
    p = checks.probabilities("feature_prob", feature_prob).to(W)
    return feature_variance(p)[:, None] * (off_diagonal(W) ** 2).sum(dim=2)


def effective_bias(W: Tensor, b: Tensor, feature_prob: Tensor) -> Tensor:
    """b̃_i = b_i + μ_i, (k, n)."""
    return b + mean_interference(W, feature_prob)


def macro_statistics(W: Tensor, b: Tensor, feature_prob: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The three numbers Eq. (5) reads off a model, each (k,): a = mean_i W_ii, the mean effective
    bias mean_i b̃_i and the interference std σ = sqrt(mean_i σ_i²)."""
    a = torch.diagonal(W, dim1=1, dim2=2).mean(dim=1)
    eff_bias = effective_bias(W, b, feature_prob).mean(dim=1)
    sigma = interference_variance(W, feature_prob).mean(dim=1).sqrt()
    return a, eff_bias, sigma


def paired_fraction(W: Tensor) -> Tensor:
    """Fraction of rows with an antipodal partner, min_{j≠i} W_ij < −½ W_ii: (k,)."""
    diag = torch.diagonal(W, dim1=1, dim2=2)
    off_min = (off_diagonal(W) + torch.diag_embed(torch.full_like(diag, float("inf")))).amin(dim=2)
    return (off_min < -0.5 * diag).float().mean(dim=1)


def dead_fraction(W: Tensor) -> Tensor:
    """Fraction of features with W_ii < 0.1 · median_k W_kk: (k,)."""
    diag = torch.diagonal(W, dim1=1, dim2=2)
    return (diag < 0.1 * diag.median(dim=1, keepdim=True).values).float().mean(dim=1)


def weight_summary(W: Tensor, b: Tensor, feature_prob: Tensor) -> pd.DataFrame:
    """One row per instance: the numbers behind Fig. 2a (spec R2) and the R14 diagnostics.

    Columns: diag_mean (a), diag_std, offdiag_std, offdiag_median_abs, offdiag_excess_kurtosis,
    bias_mean (raw b), eff_bias_mean, eff_bias_std, eff_bias_max, rank, paired, dead.
    """
    _check(W)
    n = W.shape[1]
    diag = torch.diagonal(W, dim1=1, dim2=2)
    mask = ~torch.eye(n, dtype=torch.bool, device=W.device)
    off = W[:, mask].reshape(W.shape[0], n * (n - 1))
    centred = off - off.mean(dim=1, keepdim=True)
    kurt = (centred ** 4).mean(dim=1) / (centred ** 2).mean(dim=1) ** 2 - 3
    eff = effective_bias(W, b, feature_prob)
    columns = {
        "diag_mean": diag.mean(dim=1), "diag_std": diag.std(dim=1),
        "offdiag_std": off.std(dim=1), "offdiag_median_abs": off.abs().median(dim=1).values,
        "offdiag_excess_kurtosis": kurt, "bias_mean": b.mean(dim=1),
        "eff_bias_mean": eff.mean(dim=1), "eff_bias_std": eff.std(dim=1),
        "eff_bias_max": eff.amax(dim=1),
        "rank": torch.linalg.matrix_rank(W).to(W.dtype),  # tolerance of W's own precision
        "paired": paired_fraction(W), "dead": dead_fraction(W),
    }
    return pd.DataFrame({k: np.asarray(v.detach().cpu()) for k, v in columns.items()})


# --- Chapter 2: statistical permutation symmetry, Gaussian interference (spec R3-R5, R14) ---------
#
# Δ(·) is the unbiased variance across the n rows (the paper's "mean-square fluctuation"):
#   Δdiag = Var_i W_ii,  Δb = Var_i b_i,  Δb̃ = Var_i b̃_i,  Δvar(ν) = Var_i σ_i²,  ΔE(ν) = Var_i μ_i.
# The authors' code plots variants that include the diagonal (spec R4, §7):
#   chi_varvar = Var_i(v Σ_j W_ij²),   chi_meanvar = Var_i((p/2)·(1/n) Σ_j W_ij).
# Λ (Eq. 3, the code's definition) = max_i Σ_{j≠i}|W_ij|³ / Σ_{j≠i} W_ij².
# Excess kurtosis of ν_i from cumulants of independent terms: κ₄(ν_i)/κ₂(ν_i)² with
#   κ₂ = v Σ_{j≠i} W_ij²,  κ₄ = c₄ Σ_{j≠i} W_ij⁴,  c₄ = m₄ − 3v²,  m₄ = E(x − p/2)⁴ = p/5 − p²/2 + p³/2 − 3p⁴/16.

def _row_var(values: Tensor) -> Tensor:
    """Unbiased variance over the last (row) axis: (k, n) → (k,)."""
    return values.var(dim=-1)


def delta_diag(W: Tensor) -> Tensor:
    """Δdiag(W) = Var_i W_ii: (k, n, n) → (k,)."""
    _check(W)
    return _row_var(torch.diagonal(W, dim1=1, dim2=2))


def delta_bias(b: Tensor) -> Tensor:
    """Δb = Var_i b_i of the raw bias: (k, n) → (k,). Need not vanish (spec §7)."""
    if b.dim() != 2:
        raise ValueError(f"b must have shape (k, n), got {tuple(b.shape)}")
    return _row_var(b)


def delta_effective_bias(W: Tensor, b: Tensor, feature_prob: Tensor) -> Tensor:
    """Δb̃ = Var_i (b_i + μ_i): (k,)."""
    return _row_var(effective_bias(W, b, feature_prob))


def delta_var_nu(W: Tensor, feature_prob: Tensor) -> Tensor:
    """Δvar(ν) = Var_i σ_i², σ_i² = v Σ_{j≠i} W_ij² (spec R4, paper definition): (k,)."""
    return _row_var(interference_variance(W, feature_prob))


def sigma2_relative_spread(W: Tensor, feature_prob: Tensor) -> Tensor:
    """std_i σ_i² / mean_i σ_i², the scale-free spread used by R4's acceptance test: (k,)."""
    sig2 = interference_variance(W, feature_prob)
    return sig2.std(dim=-1) / sig2.mean(dim=-1)


def delta_mean_nu(W: Tensor, feature_prob: Tensor) -> Tensor:
    """ΔE(ν) = Var_i μ_i, μ_i = (p/2) Σ_{j≠i} W_ij: (k,)."""
    return _row_var(mean_interference(W, feature_prob))


def chi_varvar(W: Tensor, feature_prob: Tensor) -> Tensor:
    """Authors' code variant of Δvar(ν): Var_i(v Σ_j W_ij²), diagonal INCLUDED: (k,)."""
    _check(W)
    p = checks.probabilities("feature_prob", feature_prob).to(W)
    return _row_var(feature_variance(p)[:, None] * (W ** 2).sum(dim=2))


def chi_meanvar(W: Tensor, feature_prob: Tensor) -> Tensor:
    """Authors' code variant of ΔE(ν): Var_i((p/2)·mean_j W_ij), diagonal included, a MEAN over j
    (n⁻² times Var_i of the natural sum): (k,)."""
    _check(W)
    p = checks.probabilities("feature_prob", feature_prob).to(W)
    return _row_var(p[:, None] / 2 * W.mean(dim=2))


def lyapunov_ratio_rows(W: Tensor) -> Tensor:
    """Σ_{j≠i}|W_ij|³ / Σ_{j≠i} W_ij² per row (the code's per-row Eq. 3): (k, n)."""
    off = off_diagonal(W)
    return (off.abs() ** 3).sum(dim=2) / (off ** 2).sum(dim=2)


def lyapunov_ratio(W: Tensor) -> Tensor:
    """Λ (Eq. 3) = max over rows of ``lyapunov_ratio_rows``: (k,)."""
    return lyapunov_ratio_rows(W).amax(dim=1)


def nu_excess_kurtosis(W: Tensor, feature_prob: Tensor) -> Tensor:
    """Excess kurtosis of ν_i, exact for independent x_j (cumulants add): (k, n).

    κ₄/κ₂² = (m₄ − 3v²)/v² · Σ_{j≠i} W_ij⁴ / (Σ_{j≠i} W_ij²)²; 0 for a Gaussian.
    """
    p = checks.probabilities("feature_prob", feature_prob).to(W)
    v = feature_variance(p)
    m4 = p / 5 - p ** 2 / 2 + p ** 3 / 2 - 3 * p ** 4 / 16
    off2 = off_diagonal(W) ** 2
    return ((m4 - 3 * v * v) / v ** 2)[:, None] * (off2 ** 2).sum(dim=2) / off2.sum(dim=2) ** 2


def sample_interference(W: Tensor, feature_prob: Tensor, rows: Tensor, n_samples: int,
                        generator: torch.Generator) -> Tensor:
    """Samples of ν_i = Σ_{j≠i} W_ij x_j for the given rows of every instance.

    rows (r,) row indices; x drawn i.i.d. from the data distribution with ``generator`` (on W's
    device). Returns (k, n_samples, r).
    """
    _check(W)
    checks.positive_int("n_samples", n_samples)
    p = checks.probabilities("feature_prob", feature_prob).to(W)
    k, n = W.shape[0], W.shape[1]
    on = torch.rand(k, n_samples, n, generator=generator, device=W.device) < p[:, None, None]
    x = torch.rand(k, n_samples, n, generator=generator, device=W.device, dtype=W.dtype) * on
    eps = off_diagonal(W)[:, rows, :]                                    # (k, r, n)
    return torch.bmm(x, eps.transpose(1, 2))


def ks_normality(W: Tensor, feature_prob: Tensor, *, generator: torch.Generator, n_rows: int = 200,
                 n_samples: int = 1000, alpha: float = 0.05) -> tuple[Tensor, Tensor]:
    """Kolmogorov-Smirnov test of normality of ν_i over many rows (spec R5, done right).

    For min(n_rows, n) rows drawn at random per call, ``n_samples`` samples of ν_i are standardised
    with their sample mean and std (as the authors' code does; Lilliefors-conservative) and tested
    against N(0, 1). Returns the median p-value over rows and the fraction of rows rejected at level
    ``alpha``, each (k,). A single row's p-value is uniform under the null: only these summaries mean
    something.
    """
    checks.positive_int("n_rows", n_rows)
    checks.unit_interval("alpha", alpha)
    if n_samples < 8:
        raise ValueError(f"n_samples must be at least 8 for a KS test, got {n_samples}")
    n = W.shape[-1]
    rows = torch.randperm(n, generator=generator, device=generator.device)[:min(n_rows, n)]
    nu = sample_interference(W, feature_prob, rows.to(W.device), n_samples, generator)
    z = (nu - nu.mean(dim=1, keepdim=True)) / nu.std(dim=1, keepdim=True)
    pvalues = scipy.stats.kstest(z.detach().cpu().double().numpy(), "norm", axis=1).pvalue
    pvalues = torch.as_tensor(np.nan_to_num(pvalues, nan=0.0))         # constant rows: reject
    return pvalues.median(dim=1).values.float(), (pvalues < alpha).float().mean(dim=1)


def symmetry_statistics(W: Tensor, b: Tensor, feature_prob: Tensor, *, d_hidden: int,
                        generator: torch.Generator, ks_rows: int = 200,
                        ks_samples: int = 1000) -> pd.DataFrame:
    """Every chapter-2 statistic of k models, one row per instance.

    Columns: a (mean diagonal), eff_bias (mean b̃), sigma (√ mean σ²), delta_diag, delta_bias,
    delta_eff_bias, delta_var_nu, sigma2_rel_spread, delta_mean_nu, chi_varvar, chi_meanvar,
    lyapunov (Λ), lyapunov_over_a, nu_excess_kurtosis (mean over rows), ks_median_pvalue,
    ks_reject_fraction, bound_ratio (``theory.rank_bound_ratio``, in float64), paired, dead.
    """
    _check(W)
    a, eff_bias, sigma = macro_statistics(W, b, feature_prob)
    ks_median, ks_reject = ks_normality(W, feature_prob, generator=generator, n_rows=ks_rows,
                                        n_samples=ks_samples)
    lam = lyapunov_ratio(W)
    columns = {
        "a": a, "eff_bias": eff_bias, "sigma": sigma,
        "delta_diag": delta_diag(W), "delta_bias": delta_bias(b),
        "delta_eff_bias": delta_effective_bias(W, b, feature_prob),
        "delta_var_nu": delta_var_nu(W, feature_prob),
        "sigma2_rel_spread": sigma2_relative_spread(W, feature_prob),
        "delta_mean_nu": delta_mean_nu(W, feature_prob),
        "chi_varvar": chi_varvar(W, feature_prob), "chi_meanvar": chi_meanvar(W, feature_prob),
        "lyapunov": lam, "lyapunov_over_a": lam / a,
        "nu_excess_kurtosis": nu_excess_kurtosis(W, feature_prob).mean(dim=1),
        "ks_median_pvalue": ks_median, "ks_reject_fraction": ks_reject,
        "bound_ratio": torch.from_numpy(np.asarray(rank_bound_ratio(W, d_hidden))),
        "paired": paired_fraction(W), "dead": dead_fraction(W),
    }
    return pd.DataFrame({k: np.asarray(v.detach().double().cpu()) for k, v in columns.items()})
