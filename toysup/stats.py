"""Statistics of W = W_out W_in (Persian Rug §4), vectorised over instances.

For output row i:  h_i = W_ii x_i + ν_i + b_i,  ν_i = Σ_{j≠i} W_ij x_j  (the interference),
μ_i = E ν_i = (p/2) Σ_{j≠i} W_ij,   σ_i² = Var ν_i = v(p) Σ_{j≠i} W_ij²,   b̃_i = b_i + μ_i (effective bias).
Finite-size diagnostics (spec R14): row i is *paired* if min_{j≠i} W_ij < −½ W_ii (an antipodal
partner), feature i is *dead* if W_ii < 0.1 · median_k W_kk.

Shapes: W (k, n, n), b (k, n), feature_prob (k,); per-row statistics (k, n); summaries (k,).
"""
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from toysup import checks


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
    v = p / 3 - p * p / 4
    return v[:, None] * (off_diagonal(W) ** 2).sum(dim=2)


def effective_bias(W: Tensor, b: Tensor, feature_prob: Tensor) -> Tensor:
    """b̃_i = b_i + μ_i, (k, n)."""
    return b + mean_interference(W, feature_prob)


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
