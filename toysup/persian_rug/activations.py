"""Output activations for the Persian Rug autoencoder y = φ(W_out W_in x + b), one registry.

Every activation maps the pre-activation ``pre`` of shape (k, batch, n) (instances first, as inside
``toysup.model``) to y of the same shape, instance by instance; per-instance parameters have a
leading k axis. Names accepted by ``AutoencoderConfig.activation`` are the keys of ``REGISTRY``:

| name       | φ                                                   | parameters           | gradient       |
|------------|-----------------------------------------------------|----------------------|----------------|
| "relu"     | max(pre, 0)  (the paper's Eq. 1)                    | none                 | hand-written   |
| "linear"   | pre  (affine baseline, spec R12)                    | none                 | hand-written   |
| "jumprelu" | pre · 1[pre > θ_i]                                  | θ (k, n), trainable  | straight-through |
| "topk"     | ReLU(pre) on the K_k largest pre of each sample, 0 elsewhere | K per instance (config ``n_kept``) | autograd |
| "gelu"     | pre · Φ(pre)  (smooth; Φ the standard normal CDF)   | none                 | autograd       |

"relu" and "linear" use the model's fast hand-written backward pass; the others go through autograd
(``model.loss_and_grads`` picks the path from ``Activation.hand_written``). Trainable parameters are
created by ``Activation.init_extra`` and live in ``AutoencoderParams.extra``, so ``params.tensors()``
includes them and ``train.fit`` optimises them with Adam like the weights.

JumpReLU (Rajamanoharan et al. 2024) has zero derivative in θ almost everywhere; we use their
straight-through estimator with a rectangle kernel of width ε = ``JUMP_BANDWIDTH``:

    ∂y/∂θ ≈ −(θ/ε) · 1[|pre − θ| < ε/2],     ∂y/∂pre = 1[pre > θ]   (exact away from the jump),

i.e. the jump of height θ at pre = θ is smeared over a window ε. θ starts at ``JUMP_THRESHOLD_INIT``
(small, so that the model starts as a ReLU — a larger θ leaves the small initial pre-activations
below threshold and the units dead — but not 0, where the jump has height 0 and the estimator's
gradient vanishes; Adam's normalised steps then move θ at the learning rate). A common scale c of
the spec's scalar JumpReLU c·h·1[h > θ] is not needed: the decoder absorbs it.

TopK (Gao et al. 2024) keeps, for every sample and instance, exactly K of the n outputs — those with
the largest pre-activations — and applies a ReLU to them. K is per instance (``n_kept``), typically
round(p·n) from the instance's feature probability (``kept_from_prob``).
"""
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

JUMP_BANDWIDTH = 0.05        # ε of the straight-through estimator, in units of x (x ∈ [0, 1])
JUMP_THRESHOLD_INIT = 0.01   # θ at initialisation: nearly a ReLU, so no unit starts dead


@dataclass(frozen=True)
class Activation:
    """Base class: the identity with no parameters. Subclasses override ``__call__``."""

    name: str = "linear"
    hand_written: bool = False    # True: model.loss_and_grads uses its fast hand-written backward

    def init_extra(self, n_instances: int, n_features: int, device: torch.device) -> dict[str, Tensor]:
        """Extra trainable tensors of this activation, deterministic (no random draws)."""
        return {}

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        """φ(pre): (k, batch, n) → (k, batch, n). ``extra`` from ``init_extra``; ``n_kept`` (k,)."""
        return pre


@dataclass(frozen=True)
class ReLU(Activation):
    """φ(h) = max(h, 0): the paper's model (Eq. 1)."""

    name: str = "relu"
    hand_written: bool = True

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        return torch.relu(pre)


@dataclass(frozen=True)
class Linear(Activation):
    """φ(h) = h: the affine autoencoder W_out W_in x + b (the linear baseline, spec R12)."""

    name: str = "linear"
    hand_written: bool = True


class _JumpFunction(torch.autograd.Function):
    """y = pre · 1[pre > θ] with the straight-through (rectangle-kernel) gradient in θ."""

    @staticmethod
    def forward(ctx, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad_out * (pre > threshold)
        window = ((pre - threshold).abs() < eps / 2).to(pre.dtype)
        grad_theta = -(threshold / eps) * window * grad_out
        return grad_pre, _reduce_to(grad_theta, threshold.shape), None


def _reduce_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to ``shape``."""
    while grad.dim() > len(shape):
        grad = grad.sum(dim=0)
    for dim, size in enumerate(shape):
        if size == 1 and grad.shape[dim] != 1:
            grad = grad.sum(dim=dim, keepdim=True)
    return grad


@dataclass(frozen=True)
class JumpReLU(Activation):
    """φ_i(h) = h · 1[h > θ_i]: a ReLU whose switch-on point θ_i (per instance and feature) is learned.

    Forward exact; θ's gradient by the straight-through estimator (module docstring), bandwidth ε.
    """

    name: str = "jumprelu"
    bandwidth: float = JUMP_BANDWIDTH
    threshold_init: float = JUMP_THRESHOLD_INIT

    def init_extra(self, n_instances: int, n_features: int, device: torch.device) -> dict[str, Tensor]:
        return {"threshold": torch.full((n_instances, n_features), self.threshold_init, device=device)}

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        theta = extra["threshold"][:, None, :]                     # (k, 1, n)
        return _JumpFunction.apply(pre, theta, self.bandwidth)


@dataclass(frozen=True)
class TopK(Activation):
    """φ(h)_i = ReLU(h_i) if h_i is among the K largest entries of its sample, else 0.

    Exactly K entries per sample and instance are kept (ties broken by ``torch.topk``); K = n_kept[k]
    may differ between instances. The gradient flows through the kept entries only.
    """

    name: str = "topk"

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        return torch.relu(pre) * topk_mask(pre, n_kept)


def topk_mask(pre: Tensor, n_kept: Tensor | None) -> Tensor:
    """0/1 mask of the n_kept[k] largest entries along the last axis: (k, batch, n) → same shape."""
    if n_kept is None:
        raise ValueError("n_kept must be given (one K per instance) for the 'topk' activation")
    k_max = int(n_kept.max())
    idx = torch.topk(pre.detach(), k_max, dim=-1, sorted=True).indices           # (k, batch, K_max)
    rank_ok = torch.arange(k_max, device=pre.device) < n_kept.to(pre.device)[:, None, None]
    return torch.zeros_like(pre).scatter_(-1, idx, rank_ok.to(pre.dtype).expand_as(idx))


@dataclass(frozen=True)
class GELU(Activation):
    """φ(h) = h Φ(h): a smooth ReLU (exact erf form), no parameters."""

    name: str = "gelu"

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        return torch.nn.functional.gelu(pre)


REGISTRY: dict[str, Activation] = {a.name: a for a in (ReLU(), Linear(), JumpReLU(), TopK(), GELU())}


def get(name: str) -> Activation:
    """The registered activation called ``name``; ValueError naming 'activation' otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"activation must be one of {sorted(REGISTRY)}, got {name!r}")
    return REGISTRY[name]


def kept_from_prob(feature_prob: float | Sequence[float], n_features: int) -> tuple[int, ...]:
    """TopK's K per instance: round(p·n), at least 1 — the expected number of active features."""
    probs = [feature_prob] if isinstance(feature_prob, (int, float)) else list(feature_prob)
    for p in probs:
        if not 0 < p <= 1:
            raise ValueError(f"feature_prob must lie in (0, 1], got {p!r}")
    return tuple(max(1, min(n_features, math.floor(p * n_features + 0.5))) for p in probs)
