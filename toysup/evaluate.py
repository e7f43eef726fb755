"""Expected loss on a large held-out sample, with its standard error.

L_k = (1/n) E‖y − x‖² is estimated per instance by the mean over N fresh samples of the per-sample
loss ℓ = (1/n)‖y − x‖², with standard error std(ℓ)/√N. Samples come from generators seeded apart
from the training data, so the estimate is unbiased for the trained model.
"""
from collections.abc import Sequence

import torch
from torch import Tensor

from toysup import checks
from toysup.data import make_generators, sample_sparse
from toysup.model import AutoencoderParams, residual


def expected_loss(params: AutoencoderParams, feature_prob: float | Sequence[float] | Tensor, *,
                  n_samples: int = 40_960, batch: int = 4096,
                  seed: int = 12_345) -> tuple[Tensor, Tensor]:
    """Mean per-feature loss of every instance and its standard error, each of shape (k,).

    feature_prob: one value or (k,) values; n_samples: held-out samples per instance (≥ 2).
    """
    k, n = params.config.n_instances, params.config.n_features
    checks.positive_int("n_samples", n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 for a standard error, got {n_samples}")
    p = checks.probabilities("feature_prob", feature_prob)
    p = p.expand(k) if p.numel() == 1 else p
    if p.numel() != k:
        raise ValueError(f"feature_prob must hold 1 or n_instances={k} values, got {p.numel()}")
    device = params.b.device
    gens = make_generators([seed + 7919 * i for i in range(k)], device)
    total = torch.zeros(k, dtype=torch.float64, device=device)
    total_sq = torch.zeros(k, dtype=torch.float64, device=device)
    done = 0
    with torch.no_grad():
        while done < n_samples:
            size = min(batch, n_samples - done)
            _, diff, _ = residual(params, sample_sparse(p, size, n, gens))
            per_sample = (diff * diff).mean(dim=2).double()                 # (k, size)
            total += per_sample.sum(dim=1)
            total_sq += (per_sample * per_sample).sum(dim=1)
            done += size
    mean = total / n_samples
    var = (total_sq / n_samples - mean ** 2).clamp_min(0) * n_samples / (n_samples - 1)
    return mean.float().cpu(), (var / n_samples).sqrt().float().cpu()
