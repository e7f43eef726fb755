"""Output activations for the Persian Rug autoencoder y = φ(W_out W_in x + b), one registry.

Every activation maps the pre-activation ``pre`` of shape (k, batch, n) (instances first, as inside
``toysup.model``) to y of the same shape, instance by instance; per-instance parameters have a
leading k axis. Names accepted by ``AutoencoderConfig.activation`` are the keys of ``REGISTRY``:

| name       | φ                                                   | parameters           | gradient       |
|------------|-----------------------------------------------------|----------------------|----------------|
| "relu"     | max(pre, 0)  (the paper's Eq. 1)                    | none                 |
| "linear"   | pre  (affine baseline, spec R12)                    | none                 |
| "jumprelu" | pre · 1[pre > θ_i]                                  | θ (k, n), trainable  |
| "topk"     | ReLU(pre) on the K_k largest pre of each sample, 0 elsewhere | K per instance (config ``n_kept``) |
| "topk_aux" | TopK, trained with the AuxK loss on its dead outputs | K per instance       |
| "gelu"     | pre · Φ(pre)  (smooth; Φ the standard normal CDF)   | none                 |

Every activation trains on the model's hand-written backward pass (``model.loss_and_grads``), which
asks it for what its gradient needs: for gated activations (ReLU, TopK, JumpReLU) dφ/dpre = 1[gate > 0],
the gate being y itself or ``Activation.opening`` (JumpReLU: pre − θ); for GELU the slope
(``Activation.slope``); for AuxK its extra term (``Activation.aux_residual``); for trainable parameters
their gradients (``Activation.extra_grads``). Those parameters are created by ``Activation.init_extra``
and live in ``AutoencoderParams.extra``, so ``params.tensors()`` includes them and ``train.fit``
optimises them with Adam like the weights. ``__call__`` is the same φ for autograd (``model.forward``),
which the tests take as the reference for every backward pass.

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
round(p·n) from the instance's feature probability (``kept_from_prob``). An output that is never
among the K gets no gradient and stays dead. "topk_aux" is the remedy of Gao et al. (2024), AuxK:
the same TopK forward pass, trained on L + α·L_aux, where L_aux is the squared error of the dead
outputs' own ReLU (pre)₊ against x on the top ``aux_kept`` of them per sample. With the identity as
decoder (the output *is* the code here) their residual e = x − y equals x on a dead output, so
‖e − ê‖² is, up to a constant, Σ over those outputs of (x_i − (pre_i)₊)². An output counts as dead
when it is zero in every sample of the batch (the paper counts 10M tokens); α = 1/32 and k_aux = n/2
are their defaults (``AUX_WEIGHT``, ``aux_kept``). Only the gradient sees L_aux: the reported loss is L.
"""
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

JUMP_BANDWIDTH = 0.05        # ε of the straight-through estimator, in units of x (x ∈ [0, 1])
JUMP_THRESHOLD_INIT = 0.01   # θ at initialisation: nearly a ReLU, so no unit starts dead
AUX_WEIGHT = 1 / 32          # α of AuxK (Gao et al. 2024)


@dataclass(frozen=True)
class Activation:
    """Base class: the identity with no parameters. Subclasses override ``__call__``."""

    name: str = "linear"
    gated: bool = False           # True: dφ/dpre = 1[gate > 0], gate = ``opening`` or else y = φ(pre)
    keeps_k: bool = False         # True: needs K per instance (``AutoencoderConfig.n_kept``)
    auxiliary: bool = False       # True: trained with an auxiliary loss (``aux_residual``)

    def init_extra(self, n_instances: int, n_features: int, device: torch.device) -> dict[str, Tensor]:
        """Extra trainable tensors of this activation, deterministic (no random draws)."""
        return {}

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        """φ(pre): (k, batch, n) → (k, batch, n). ``extra`` from ``init_extra``; ``n_kept`` (k,)."""
        return pre

    def apply_(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        """φ(pre), overwriting ``pre`` where the activation can (the forward pass without autograd)."""
        return self(pre, extra, n_kept)

    def opening(self, pre: Tensor, extra: Mapping[str, Tensor]) -> Tensor | None:
        """For a gated activation whose gate is not y itself: a new tensor (k, batch, n), positive exactly
        where dφ/dpre = 1 (JumpReLU: pre − θ). None: the gate is y (ReLU, TopK) or there is none."""
        return None

    def extra_grads(self, opening: Tensor | None, residual: Tensor, extra: Mapping[str, Tensor]) -> list[Tensor]:
        """Gradients of Σ_k L_k in the activation's own tensors, in the order of ``sorted(extra)``, from
        ``opening`` and residual = ∂(Σ_k L_k)/∂y (k, batch, n), before any mask."""
        return []

    def slope(self, pre: Tensor) -> Tensor | None:
        """dφ/dpre (k, batch, n) for the hand-written backward pass of an ungated activation (GELU), or
        None where the pass needs none (the linear model) or uses the gate (ReLU, TopK)."""
        return None

    def aux_residual(self, pre: Tensor, y: Tensor, x: Tensor) -> Tensor:
        """For an activation with an auxiliary training loss L_aux (``auxiliary``): its counterpart of
        the gated y − x, (batch·n/2)·∂L_aux/∂pre, that the hand-written backward pass adds. pre,
        y = φ(pre) and the dense x, all (k, batch, n)."""
        raise NotImplementedError(f"activation {self.name!r} has no auxiliary loss")


@dataclass(frozen=True)
class ReLU(Activation):
    """φ(h) = max(h, 0): the paper's model (Eq. 1)."""

    name: str = "relu"
    gated: bool = True

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        return torch.relu(pre)

    def apply_(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        return pre.clamp_min_(0)


@dataclass(frozen=True)
class Linear(Activation):
    """φ(h) = h: the affine autoencoder W_out W_in x + b (the linear baseline, spec R12)."""

    name: str = "linear"


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
    gated: bool = True
    bandwidth: float = JUMP_BANDWIDTH
    threshold_init: float = JUMP_THRESHOLD_INIT

    def init_extra(self, n_instances: int, n_features: int, device: torch.device) -> dict[str, Tensor]:
        return {"threshold": torch.full((n_instances, n_features), self.threshold_init, device=device)}

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        theta = extra["threshold"][:, None, :]                     # (k, 1, n)
        return _JumpFunction.apply(pre, theta, self.bandwidth)

    def apply_(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        return pre.mul_(pre > extra["threshold"][:, None, :])

    def opening(self, pre: Tensor, extra: Mapping[str, Tensor]) -> Tensor:
        return pre - extra["threshold"][:, None, :]                # > 0 exactly where y = pre

    def extra_grads(self, opening: Tensor | None, residual: Tensor, extra: Mapping[str, Tensor]) -> list[Tensor]:
        """θ's straight-through gradient (as in ``_JumpFunction.backward``): −(θ/ε)·Σ_batch over the
        window |pre − θ| < ε/2 of the residual ∂L/∂y, which there includes pre ≤ θ, where y = 0."""
        inside = opening.abs().neg_().add_(self.bandwidth / 2)        # > 0 exactly inside the window
        # threshold_backward keeps residual where inside > 0: 10x faster here than torch.where with a 0
        # (torch 2.13, one thread, (8, 512, 256)).
        windowed = torch.ops.aten.threshold_backward(residual, inside, 0.0)
        return [windowed.sum(dim=1).mul_(-extra["threshold"] / self.bandwidth)]


@dataclass(frozen=True)
class TopK(Activation):
    """φ(h)_i = ReLU(h_i) if h_i is among the K largest entries of its sample, else 0.

    Exactly K entries per sample and instance are kept (ties broken by ``torch.topk``); K = n_kept[k]
    may differ between instances. The gradient flows through the kept entries only, so the
    hand-written backward pass of ReLU applies with the mask 1[y > 0].
    """

    name: str = "topk"
    gated: bool = True
    keeps_k: bool = True

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        return torch.relu(pre) * topk_mask(pre, n_kept)

    def apply_(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        mask = topk_mask(pre, n_kept)
        return pre.clamp_min_(0).mul_(mask)


def aux_kept(n_features: int) -> int:
    """AuxK's k_aux: the dead outputs per sample that the auxiliary loss reconstructs, n/2 (Gao et al.
    2024 take half the dimension that the dead codes reconstruct; here the decoder is the identity)."""
    return max(1, n_features // 2)


@dataclass(frozen=True)
class TopKAux(TopK):
    """TopK trained with AuxK (module docstring): the gradient of L + ``AUX_WEIGHT``·L_aux.

    L_aux = mean over batch and features of A·(x − (pre)₊)², A the 0/1 mask of the ``aux_kept(n)``
    largest pre-activations per sample among the outputs that are zero in every sample of the batch.
    """

    name: str = "topk_aux"
    auxiliary: bool = True

    def aux_residual(self, pre: Tensor, y: Tensor, x: Tensor) -> Tensor:
        """α·A·((pre)₊ − x)·1[pre > 0]: L_aux = α·mean A·(x − (pre)₊)² has gradient (2/(batch·n)) times this."""
        dead = (y > 0).sum(dim=1, keepdim=True) == 0                             # (k, 1, n)
        n_aux = aux_kept(pre.shape[-1])
        chosen = dead.to(pre.dtype).expand_as(pre).contiguous()
        # Only instances with more than n_aux dead outputs need a selection; in the others every dead
        # output enters (the same mask, without the topk: 2 of chapter 4's 8 instances need it).
        over = (dead.sum(dim=-1).squeeze(1) > n_aux).nonzero().squeeze(1)
        if len(over):
            masked = pre.index_select(0, over).masked_fill(~dead.index_select(0, over), -math.inf)
            kept = topk_mask(masked, torch.full((len(over),), n_aux, device=pre.device))
            chosen.index_copy_(0, over, kept * chosen.index_select(0, over))
        on = torch.relu(pre).mul_(chosen)
        # threshold_backward keeps on − x where on > 0 (faster than torch.where with a 0, see extra_grads)
        return torch.ops.aten.threshold_backward(on - x, on, 0.0).mul_(AUX_WEIGHT)


def topk_mask(pre: Tensor, n_kept: Tensor | None) -> Tensor:
    """0/1 mask of the n_kept[k] largest entries along the last axis: (k, batch, n) → same shape."""
    if n_kept is None:
        raise ValueError("n_kept must be given (one K per instance) for the 'topk' activation")
    # One unsorted topk per distinct K (at most a few: K follows p), not one sorted topk of the largest
    # K for all instances: faster by 1.3-1.5x on (4, 512, 512), K = 10, 26, 51, 102 (one thread;
    # bench/train_throughput.py, section "activations", which also checks that the masks agree).
    n_kept = n_kept.to(pre.device)
    mask = torch.zeros_like(pre)
    for kept in n_kept.unique().tolist():
        members = (n_kept == kept).nonzero().squeeze(1)
        idx = torch.topk(pre.detach().index_select(0, members), kept, dim=-1, sorted=False).indices
        mask.index_copy_(0, members, pre.new_zeros((len(members), *pre.shape[1:])).scatter_(-1, idx, 1.0))
    return mask


@dataclass(frozen=True)
class GELU(Activation):
    """φ(h) = h Φ(h): a smooth ReLU (exact erf form), no parameters."""

    name: str = "gelu"

    def __call__(self, pre: Tensor, extra: Mapping[str, Tensor], n_kept: Tensor | None) -> Tensor:
        return torch.nn.functional.gelu(pre)

    def slope(self, pre: Tensor) -> Tensor:
        return torch.ops.aten.gelu_backward(torch.ones_like(pre), pre)        # Φ(h) + h φ(h)


REGISTRY: dict[str, Activation] = {a.name: a for a in (ReLU(), Linear(), JumpReLU(), TopK(), TopKAux(),
                                                        GELU())}


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
