"""Weight transformations that keep, or deliberately change, the statistics of W (Persian Rug R6).

If the loss depends on trained weights only through (a, b̃, σ) (Eq. 5), transformations that keep the
row statistics and change the individual weights must leave the loss unchanged (at large n), while a
transformation that changes a statistic must move it as Eq. (5) predicts. With W = W_out W_in:

* ``permute_features``: W → PᵀWP, b → Pᵀb (relabel the features; an exact symmetry of the data, so
  the loss is unchanged at every n, up to sampling noise).
* ``shuffle_rows``: in every row, the off-diagonal entries are randomly permuted among the
  off-diagonal positions: every row keeps its multiset of entries, all correlations between rows
  (antipodal pairs W_ij ≈ W_ji ≈ −a, low rank) are destroyed. Also an exact symmetry of the loss
  (the loss is a sum over rows, each a function of its row's multiset for i.i.d. x).
* ``resample_rows``: the off-diagonal entries of every row are redrawn as Gaussians with that row's
  sum and sum of squares: W_ii, b_i, μ_i, σ_i² are kept exactly, the tails and the antipodal
  partners are gone. The real test: if only (a, b̃, σ) matter, the loss does not move.
* ``projector_replacement``: W → (a/r)Π with Π = UUᵀ a random orthogonal projector of rank m with
  constant diagonal r (Eq. 7; ``projectors.orthonormal_columns``, Hadamard rows with random signs
  when n is a power of 2), a the trained mean diagonal; biases set so that every effective bias
  equals the trained mean b̃. σ drops to the rank bound a·s(p, r) (Eq. 6).
* ``scale_interference``: off-diagonal entries × c, biases shifted so each b̃_i is kept: σ → cσ, the
  contrast that DOES change a statistic.

All take and return ``AutoencoderParams`` (instances axis k) so ``evaluate.expected_loss`` applies;
full-rank results are stored with d_hidden = n, W_in = I, W_out = W; ``evaluate.loss_change``
compares a model and its transform on the same held-out samples.
Shapes: W (k, n, n), b (k, n), feature_prob (k,).
"""
from collections.abc import Sequence

import torch
from torch import Tensor

from toysup.persian_rug import projectors, stats
from toysup.persian_rug.data import instance_probs
from toysup.persian_rug.model import AutoencoderConfig, AutoencoderParams


def dense_params(W: Tensor, b: Tensor) -> AutoencoderParams:
    """Untied ReLU params with W_out W_in = W exactly: d_hidden = n, W_in = I, W_out = W."""
    stats._check(W)
    k, n = W.shape[0], W.shape[1]
    eye = torch.eye(n, dtype=W.dtype, device=W.device).expand(k, n, n).contiguous()
    return AutoencoderParams(AutoencoderConfig(n, n, k), eye, W.contiguous(), b.clone())


def permute_features(params: AutoencoderParams, generator: torch.Generator) -> AutoencoderParams:
    """W → PᵀWP, b → Pᵀb with an independent random permutation per instance (W'_ij = W_π(i)π(j))."""
    k, n = params.config.n_instances, params.config.n_features
    perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(k)]).to(params.b.device)
    idx = perms[:, :, None].expand(k, n, params.config.d_hidden)
    enc = torch.gather(params.encoder, 1, idx)
    dec = enc if params.config.tied else torch.gather(params.decoder, 1, idx)
    return AutoencoderParams(params.config, enc, dec, torch.gather(params.b, 1, perms))


def shuffle_rows(params: AutoencoderParams, generator: torch.Generator) -> AutoencoderParams:
    """Permute the n − 1 off-diagonal entries of every row at random; diagonal and b kept.

    An exact symmetry of the loss at every n: the loss is a sum over rows, and row i's term depends
    on its entries only through the distribution of ν_i = Σ_j W_ij x_j, which for i.i.d. x_j is the
    same for any order of the entries. Destroys every correlation between rows (antipodal partners
    W_ij ≈ W_ji, the low rank) without changing the loss.
    """
    W = params.W_eff()
    k, n = W.shape[0], W.shape[1]
    cols = _off_columns(n, W.device).expand(k, n, n - 1)
    values = torch.gather(W, 2, cols)
    order = torch.argsort(torch.rand(k, n, n - 1, generator=generator), dim=2).to(W.device)
    out = W.clone()
    out.scatter_(2, cols, torch.gather(values, 2, order))
    return dense_params(out, params.b)


def resample_rows(params: AutoencoderParams, generator: torch.Generator) -> AutoencoderParams:
    """Redraw the off-diagonal entries of every row as Gaussians with the row's own sum and sum of
    squares (so W_ii, b_i, μ_i, σ_i², b̃_i of every row are kept exactly); only the SHAPE of the
    entry distribution changes: heavy tails and antipodal partners are replaced by Gaussian entries,
    and ν_i becomes (nearly) Gaussian. Full rank result.
    """
    W = params.W_eff()
    k, n = W.shape[0], W.shape[1]
    cols = _off_columns(n, W.device).expand(k, n, n - 1)
    values = torch.gather(W, 2, cols).double()
    mean, std = values.mean(dim=2, keepdim=True), values.std(dim=2, correction=0, keepdim=True)
    g = torch.randn(k, n, n - 1, generator=generator, dtype=torch.float64).to(W.device)
    g = (g - g.mean(dim=2, keepdim=True)) / g.std(dim=2, correction=0, keepdim=True)
    out = W.clone()
    out.scatter_(2, cols, (mean + std * g).to(W.dtype))
    return dense_params(out, params.b)


def _off_columns(n: int, device: torch.device) -> Tensor:
    """(n, n − 1): the column indices j ≠ i of row i, in order."""
    j = torch.arange(n - 1)[None, :]
    return (j + (j >= torch.arange(n)[:, None])).to(device)


def projector_replacement(params: AutoencoderParams, feature_prob: float | Sequence[float] | Tensor,
                          generator: torch.Generator) -> AutoencoderParams:
    """W → (a/r)UUᵀ (Eq. 7) with U from ``projectors.orthonormal_columns``; b_i = b̃ − μ'_i.

    U is of kind "hadamard" (diagonal of UUᵀ exactly r) when n is a power of 2, else "gaussian";
    a = mean_i W_ii and b̃ = mean_i b̃_i of the trained instance; r = m/n as realised. Rank m, so it
    is stored factorised: W_in = √(a/r) Uᵀ, W_out = √(a/r) U.
    """
    cfg = params.config
    k, n, m = cfg.n_instances, cfg.n_features, cfg.d_hidden
    p = instance_probs(feature_prob, k)
    W = params.W_eff()
    a = torch.diagonal(W, dim1=1, dim2=2).mean(dim=1)                    # (k,)
    target = stats.effective_bias(W, params.b, p).mean(dim=1)            # (k,)
    kind = "hadamard" if n & (n - 1) == 0 else "gaussian"
    U = projectors.orthonormal_columns(n, m, k, generator, kind=kind).to(W)   # (k, n, m)
    scale = (a * n / m).clamp_min(0).sqrt()[:, None, None]
    enc = (scale * U).contiguous()
    new = AutoencoderParams(AutoencoderConfig(n, m, k), enc, enc.clone(), torch.zeros_like(params.b))
    new.b = target[:, None] - stats.mean_interference(new.W_eff(), p).to(W)
    return new


def scale_interference(params: AutoencoderParams, feature_prob: float | Sequence[float] | Tensor,
                       factor: float) -> AutoencoderParams:
    """Off-diagonal entries × ``factor`` (σ → factor·σ), b_i shifted so every b̃_i is unchanged."""
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor!r}")
    p = instance_probs(feature_prob, params.config.n_instances)
    W = params.W_eff()
    off = stats.off_diagonal(W)
    new_W = W - off + factor * off
    b = params.b - (factor - 1) * stats.mean_interference(W, p).to(W)
    return dense_params(new_W, b)
