"""Expected loss on a large held-out sample, with its standard error.

L_k = (1/n) E‖y − x‖² is estimated per instance by the mean over N fresh samples of the per-sample
loss ℓ = (1/n)‖y − x‖², with standard error sqrt(s²/N), s² = (Σℓ²/N − mean²)·N/(N − 1) the unbiased
sample variance. ``LossAccumulator`` keeps Σℓ and Σℓ² over chunks of samples, so N is not bounded
by memory; it is the one mean-and-standard-error accumulator of ``toysup.persian_rug`` (the rug's
Monte-Carlo losses use it too). Samples come from generators seeded apart from the training data, so
the estimate is unbiased for the trained model.

``expected_loss`` scores one batch of models; ``loss_change`` scores two on the SAME samples
(paired), so the standard error of their difference is far below that of either loss.
Shapes: feature_prob (k,) or one value; per-sample losses (k, batch); results (k,).
"""
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from toysup import allocator, checks
from toysup.persian_rug.data import instance_probs, make_generators, sample_sparse
from toysup.persian_rug.model import AutoencoderParams, residual


class LossAccumulator:
    """Running mean and standard error of per-sample losses of k instances, fed in chunks.

    ``add`` takes a (k, batch) chunk (any float dtype; summed in float64 on its device); ``mean``
    and ``stderr`` return (k,) float64. The standard error is NaN below two samples.
    """

    def __init__(self, n_instances: int, device: torch.device | str | None = None) -> None:
        checks.positive_int("n_instances", n_instances)
        self.total = torch.zeros(n_instances, dtype=torch.float64, device=device)
        self.total_sq = torch.zeros(n_instances, dtype=torch.float64, device=device)
        self.count = 0

    def add(self, per_sample: Tensor) -> None:
        """Accumulate a chunk of per-sample losses, (k, batch)."""
        if per_sample.dim() != 2 or per_sample.shape[0] != self.total.numel():
            raise ValueError(f"per_sample must have shape ({self.total.numel()}, batch), "
                             f"got {tuple(per_sample.shape)}")
        values = per_sample.double()
        self.total += values.sum(dim=1)
        self.total_sq += (values * values).sum(dim=1)
        self.count += values.shape[1]

    def mean(self) -> Tensor:
        """Mean per-sample loss, (k,)."""
        return self.total / self.count

    def stderr(self) -> Tensor:
        """Standard error of ``mean``, sqrt(s²/N), (k,); NaN for N < 2."""
        n = self.count
        if n < 2:
            return torch.full_like(self.total, float("nan"))
        var = (self.total_sq / n - self.mean() ** 2).clamp_min(0) * n / (n - 1)
        return (var / n).sqrt()


def _check_samples(n_samples: int) -> None:
    checks.positive_int("n_samples", n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 for a standard error, got {n_samples}")


def _held_out(models: Sequence[AutoencoderParams], p: Tensor, n_samples: int, batch: int,
              seed: int) -> list[LossAccumulator]:
    """Per-sample losses of every model on the same fresh samples (generator of instance i seeded
    with seed + 7919 i), one accumulator per model; for two models a third one holds the paired
    difference (second − first)."""
    allocator.retain_freed_memory()
    k, n = models[0].config.n_instances, models[0].config.n_features
    device = models[0].b.device
    gens = make_generators([seed + 7919 * i for i in range(k)], device)
    accumulators = [LossAccumulator(k, device) for _ in range(len(models) + (len(models) == 2))]
    done = 0
    with torch.no_grad():
        while done < n_samples:
            size = min(batch, n_samples - done)
            data = sample_sparse(p, size, n, gens)
            losses = [(residual(model, data).diff ** 2).mean(dim=2).double() for model in models]
            if len(models) == 2:
                losses.append(losses[1] - losses[0])
            for accumulator, loss in zip(accumulators, losses):
                accumulator.add(loss)
            done += size
    return accumulators


def expected_loss(params: AutoencoderParams, feature_prob: float | Sequence[float] | Tensor, *,
                  n_samples: int = 40_960, batch: int = 4096,
                  seed: int = 12_345) -> tuple[Tensor, Tensor]:
    """Mean per-feature loss of every instance and its standard error, each of shape (k,), float32.

    feature_prob: one value or (k,) values; n_samples: held-out samples per instance (≥ 2).
    """
    _check_samples(n_samples)
    p = instance_probs(feature_prob, params.config.n_instances)
    (loss,) = _held_out([params], p, n_samples, batch, seed)
    return loss.mean().float().cpu(), loss.stderr().float().cpu()


@dataclass
class LossChange:
    """Held-out losses of two models on the SAME samples: each (k,), float64, CPU."""

    before: Tensor
    after: Tensor
    stderr: Tensor         # standard error of ``before`` (sampling noise of one loss estimate)
    delta: Tensor          # after − before
    delta_stderr: Tensor   # standard error of the paired difference


def loss_change(before: AutoencoderParams, after: AutoencoderParams,
                feature_prob: float | Sequence[float] | Tensor, *, n_samples: int = 40_960,
                batch: int = 2048, seed: int = 12_345) -> LossChange:
    """L(after) − L(before) per instance, both evaluated on the same fresh samples (paired)."""
    k, n = before.config.n_instances, before.config.n_features
    if (after.config.n_instances, after.config.n_features) != (k, n):
        raise ValueError(f"after must have {k} instances of {n} features, got "
                         f"{after.config.n_instances} of {after.config.n_features}")
    _check_samples(n_samples)
    p = instance_probs(feature_prob, k)
    loss0, loss1, delta = _held_out([before, after], p, n_samples, batch, seed)
    return LossChange(loss0.mean().cpu(), loss1.mean().cpu(), loss0.stderr().cpu(),
                      delta.mean().cpu(), delta.stderr().cpu())
