"""The ReLU-output autoencoder of the Persian Rug paper (Eq. 1), batched over model instances:

    y = ReLU(W_out W_in x + b),   W_in (m × n),  W_out (n × m),  b (n),   L = (1/n) E‖y − x‖²  (Eq. 2)

Paper → code: n (n_s, ``n_sparse``) → ``n_features``; m (n_d, ``n_dense``) → ``d_hidden``;
W = W_out W_in → ``W_eff``. ``tied=True`` gives the TMS model ReLU(Wᵀ W x + b) (Elhage et al. 2022,
W_out = W_inᵀ); ``activation="linear"`` gives the affine baseline W_out W_in x + b. Any activation of
the registry ``toysup.activations`` (JumpReLU, TopK, GELU, …) replaces the ReLU: y = φ(W_out W_in x + b).
Every activation trains with one hand-written backward pass (``loss_and_grads``). An activation's own
trainable tensors (JumpReLU's thresholds θ (k, n)) live in ``AutoencoderParams.extra``.

Every parameter carries a leading instances axis k; nothing here mixes instances. Storage is chosen
for speed: ``encoder`` E = W_inᵀ and ``decoder`` D = W_out, both (k, n, m) and contiguous, so that
the sparse input multiplies one (k·n, m) stack and the tied model simply has D = E.

Shapes: W_in (k, m, n) · W_out (k, n, m) · b (k, n) · W_eff (k, n, n) · x, y (batch, k, n).
``hidden_width`` is the one rule for m from a ratio r = m/n.
"""
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from toysup import checks
from toysup.persian_rug import activations, calibrate
from toysup.persian_rug.data import SparseBatch

Activation = str   # a key of toysup.activations.REGISTRY: "relu", "linear", "jumprelu", "topk", "topk_aux", "gelu"


@dataclass(frozen=True)
class AutoencoderConfig:
    """Sizes and variant of k independent autoencoders trained side by side."""

    n_features: int            # n
    d_hidden: int              # m, at most n
    n_instances: int = 1       # k
    tied: bool = False         # True: W_out = W_inᵀ (TMS); the Persian Rug model is untied
    activation: Activation = "relu"
    n_kept: int | tuple[int, ...] | None = None   # TopK only: K per instance (one int: all instances)

    def __post_init__(self) -> None:
        checks.positive_int("n_features", self.n_features)
        checks.positive_int("d_hidden", self.d_hidden, maximum=self.n_features)
        checks.positive_int("n_instances", self.n_instances)
        activations.get(self.activation)
        if activations.get(self.activation).keeps_k:
            kept = self.n_kept
            if kept is None:
                raise ValueError(f"n_kept must be set (K per instance) for activation {self.activation!r}, got None")
            kept = (kept,) * self.n_instances if isinstance(kept, int) else tuple(kept)
            if len(kept) != self.n_instances:
                raise ValueError(f"n_kept must hold 1 or n_instances={self.n_instances} values, "
                                 f"got {len(kept)}")
            for value in kept:
                checks.positive_int("n_kept", value, maximum=self.n_features)
            object.__setattr__(self, "n_kept", kept)
        elif self.n_kept is not None:
            raise ValueError(f"n_kept must be None for activation {self.activation!r} (it is TopK's K), "
                             f"got {self.n_kept!r}")

    @property
    def ratio(self) -> float:
        """r = m / n as realised (see ``hidden_width`` for m from a nominal r)."""
        return self.d_hidden / self.n_features


def hidden_width(n_features: int, ratio: float) -> int:
    """The hidden width m = max(1, ⌊r·n⌋) for n features at the nominal ratio r (spec §1.2, as the
    authors' code: ``n_dense = max(1, floor(ratio * n_sparse))``).

    The one rule turning a ratio into a width in ``toysup.persian_rug``; the realised ratio is then
    ``AutoencoderConfig.ratio`` = m/n, which plots and theory use. ratio in (0, 1].
    """
    checks.positive_int("n_features", n_features)
    checks.unit_interval("ratio", ratio)
    return max(1, math.floor(ratio * n_features))


@dataclass
class AutoencoderParams:
    """Parameters of k autoencoders; ``decoder is encoder`` for tied models."""

    config: AutoencoderConfig
    encoder: Tensor   # E = W_inᵀ, (k, n, m)
    decoder: Tensor   # D = W_out, (k, n, m)
    b: Tensor         # (k, n)
    extra: dict[str, Tensor] = field(default_factory=dict)   # the activation's own tensors, (k, …)

    @property
    def W_in(self) -> Tensor:
        """(k, m, n), a view of ``encoder``."""
        return self.encoder.transpose(1, 2)

    @property
    def W_out(self) -> Tensor:
        """(k, n, m)."""
        return self.decoder

    def W_eff(self) -> Tensor:
        """W = W_out W_in, (k, n, n)."""
        return torch.bmm(self.decoder, self.encoder.transpose(1, 2))

    def tensors(self) -> list[Tensor]:
        """The distinct trainable tensors: encoder, decoder (untied only), b, then ``extra`` by name."""
        base = [self.encoder, self.b] if self.config.tied else [self.encoder, self.decoder, self.b]
        return base + [self.extra[key] for key in sorted(self.extra)]

    def with_tensors(self, tensors: list[Tensor]) -> "AutoencoderParams":
        """A new AutoencoderParams holding ``tensors`` in the order of ``tensors()`` (no copy)."""
        n_base = 2 if self.config.tied else 3
        enc, b = tensors[0], tensors[n_base - 1]
        dec = enc if self.config.tied else tensors[1]
        extra = dict(zip(sorted(self.extra), tensors[n_base:]))
        return AutoencoderParams(self.config, enc, dec, b, extra)

    def n_kept_tensor(self) -> Tensor | None:
        """TopK's K per instance as a (k,) int64 tensor on the parameters' device (None otherwise)."""
        if self.config.n_kept is None:
            return None
        return torch.tensor(self.config.n_kept, dtype=torch.int64, device=self.b.device)

    def instances(self, block: slice) -> "AutoencoderParams":
        """The instances ``block`` (a slice with step 1) as views of these tensors (no copy): the
        trainer's blocks of instances, whose gradients land in slices of the whole tensors."""
        idx = range(self.config.n_instances)[block]
        if idx.step != 1 or len(idx) == 0:
            raise ValueError(f"block must be a non-empty slice with step 1, got {block!r}")
        kept = None if self.config.n_kept is None else self.config.n_kept[block]
        cfg = AutoencoderConfig(self.config.n_features, self.config.d_hidden, len(idx),
                                self.config.tied, self.config.activation, kept)
        enc = self.encoder[block]
        dec = enc if cfg.tied else self.decoder[block]
        extra = {key: value[block] for key, value in self.extra.items()}
        return AutoencoderParams(cfg, enc, dec, self.b[block], extra)

    def select(self, index: list[int] | slice) -> "AutoencoderParams":
        """The instances ``index`` as a new (copied) AutoencoderParams."""
        idx = list(range(self.config.n_instances))[index] if isinstance(index, slice) else list(index)
        kept = None if self.config.n_kept is None else tuple(self.config.n_kept[i] for i in idx)
        cfg = AutoencoderConfig(self.config.n_features, self.config.d_hidden, len(idx),
                                self.config.tied, self.config.activation, kept)
        enc = self.encoder[idx].clone()
        dec = enc if cfg.tied else self.decoder[idx].clone()
        extra = {key: value[idx].clone() for key, value in self.extra.items()}
        return AutoencoderParams(cfg, enc, dec, self.b[idx].clone(), extra)


def init_params(config: AutoencoderConfig, generators: list[torch.Generator]) -> AutoencoderParams:
    """PyTorch's default ``nn.Linear`` initialisation, drawn per instance from its own generator.

    W_in ~ U(±1/√n) (fan-in n), W_out ~ U(±1/√m) and b ~ U(±1/√m) (fan-in m), as for
    ``nn.Linear(n, m, bias=False)`` followed by ``nn.Linear(m, n)``. Tied models draw only W_in.
    The activation's own tensors (``extra``) start at fixed values and use no random draws, so the
    weights are the same for every activation with the same seeds.
    """
    if len(generators) != config.n_instances:
        raise ValueError(f"generators must hold one generator per instance ({config.n_instances}), "
                         f"got {len(generators)}")
    n, m, k = config.n_features, config.d_hidden, config.n_instances
    device = generators[0].device

    def uniform(shape: tuple[int, ...], fan_in: int, gen: torch.Generator) -> Tensor:
        return (torch.rand(shape, generator=gen, device=device) * 2 - 1) / fan_in ** 0.5

    enc = torch.empty(k, n, m, device=device)
    dec = torch.empty(k, n, m, device=device)
    b = torch.empty(k, n, device=device)
    for i, gen in enumerate(generators):
        enc[i] = uniform((m, n), n, gen).T          # drawn in nn.Linear's (out, in) order
        if not config.tied:
            dec[i] = uniform((n, m), m, gen)
        b[i] = uniform((n,), m, gen)
    extra = activations.get(config.activation).init_extra(k, n, device)
    return AutoencoderParams(config, enc, enc if config.tied else dec, b, extra)


def forward(params: AutoencoderParams, x: Tensor) -> Tensor:
    """y = φ(W_out W_in x + b), φ the config's activation (ReLU, identity, JumpReLU, TopK, GELU).

    x (batch, k, n) → y (batch, k, n). Differentiable with autograd; the trainer uses the faster
    ``loss_and_grads``.
    """
    k, n = params.config.n_instances, params.config.n_features
    if x.dim() != 3 or x.shape[1] != k or x.shape[2] != n:
        raise ValueError(f"x must have shape (batch, {k}, {n}), got {tuple(x.shape)}")
    h = torch.bmm(x.transpose(0, 1), params.encoder)                      # (k, batch, m)
    pre = torch.baddbmm(params.b[:, None, :], h, params.decoder.transpose(1, 2))
    activation = params.config.activation
    if activation == "relu":
        y = torch.relu(pre)
    elif activation == "linear":
        y = pre
    else:
        y = activations.get(activation)(pre, params.extra, params.n_kept_tensor())
    return y.transpose(0, 1)


def loss_per_instance(x: Tensor, y: Tensor) -> Tensor:
    """Per-feature MSE (Eq. 2), mean over batch and features: (batch, k, n) → (k,).
    Train on ``.sum()`` so that each instance gets exactly its own gradient."""
    return ((y - x) ** 2).mean(dim=(0, 2))


# Above this fraction of non-zero inputs the encoder's products are faster dense (bmm over the dense x)
# than from the sparse batch (``SparseBatch.times``/``t_times``, and the sort that builds the transpose).
# Measured on one thread, batch 1024, r = 0.05…0.5 (torch 2.13, embedding_bag products): for one
# instance (bench/train_throughput.py, section "input") the dense path wins from p ≈ 0.05 below n = 256,
# from p ≈ 0.1 at n = 256 and only from p ≈ 0.2–0.3 at n = 512 and 1024; for the blocks that training
# runs (``train.instance_blocks``: 16 instances at n = 64, 4 at 256, 2 at 512) the sparse path won up to
# p ≈ 0.1–0.15 at n = 64–128, ≈ 0.2–0.25 at n = 256 and ≈ 0.3 at n = 512.
DENSE_INPUT = 0.075
DENSE_INPUT_LARGE = 0.15    # the threshold from n = LARGE_INPUT features on
LARGE_INPUT = 256


# Which backward products run is measured once per machine and block shape (``calibrate.thresholds``):
# the fraction f* of g's non-zero entries below which gᵀh and g·W_out are faster from those entries, and
# the density d* below which the sparse path's encoder gradient diag(x)ᵀ·∂h is faster from the batch's
# entries sorted by feature than as one bmm on the dense x; both grow with m and differ between CPUs
# (2-3x between an AMD EPYC and an Intel Xeon). With a negative bias a ReLU model's f falls from about
# 0.5 at initialisation to about p plus its false positives. f is counted on the first COUNTED_ENTRIES
# entries' worth of samples of each instance (samples are i.i.d., so at f = 0.08 the estimate's standard
# deviation is about 0.001): 0.02 ms, where counting all of g took 0.5-1.1 ms at 2^20-2^21 entries
# (4-8 % of a step; one thread, an AMD EPYC).
COUNTED_ENTRIES = 2 ** 16


def dense_transpose(batch: SparseBatch, d_hidden: int) -> bool:
    """Whether the sparse path's encoder gradient is one bmm on the dense x: the batch's density
    above the machine's d* for its shape (``calibrate.thresholds``)."""
    total = batch.n_instances * batch.batch * batch.n_features
    crossover = calibrate.thresholds(batch.values.device, batch.n_instances, batch.batch, batch.n_features,
                                     d_hidden).transpose
    return batch.values.numel() > crossover * total


def sparse_output(g: Tensor, d_hidden: int) -> bool:
    """Whether the backward products take g's non-zero entries: their fraction, counted on the first
    samples of each instance (``COUNTED_ENTRIES``), below the machine's f* for the block's shape
    (``calibrate.thresholds``). g (k, batch, n)."""
    crossover = calibrate.thresholds(g.device, *g.shape, d_hidden).output
    counted = g[:, :max(1, COUNTED_ENTRIES // (g.shape[0] * g.shape[2]))]
    # .bool().sum(): 10x faster than torch.count_nonzero here
    return int(counted.bool().sum()) < crossover * counted.numel()


def dense_threshold(n_features: int) -> float:
    """The density above which a batch of n-feature inputs takes the dense path (see DENSE_INPUT)."""
    return DENSE_INPUT_LARGE if n_features >= LARGE_INPUT else DENSE_INPUT


def dense_input(batch: SparseBatch) -> bool:
    """Whether ``residual`` takes the dense input path for this batch: its density (non-zero entries
    over k·batch·n) above ``dense_threshold(n)``."""
    total = batch.n_instances * batch.batch * batch.n_features
    return batch.values.numel() > dense_threshold(batch.n_features) * total


@dataclass(frozen=True)
class Residual:
    """What ``residual`` returns: the forward pass's results that the backward pass needs.

    h (k, batch, m): the hidden layer. diff (k, batch, n): y − x. gate, for gated activations (ReLU,
    TopK, JumpReLU: dφ/dpre = 1[gate > 0]), else None: y itself or the activation's ``opening``, ≤ 0
    exactly at the entries whose gradient the backward pass must zero — (nnz,) at the batch's non-zero
    entries on the sparse path (where y = 0 elsewhere, y − x is already 0), (k, batch, n) on the dense
    path. x: the dense x (k, batch, n) on the dense path, None on the sparse one. aux: for activations
    with an auxiliary loss, its term of the backward pass (``Activation.aux_residual``, (k, batch, n)),
    else None. slope: dφ/dpre (k, batch, n) for ungated activations with one (GELU,
    ``Activation.slope``), else None. opening: ``Activation.opening`` (k, batch, n) where it has one.
    """

    h: Tensor
    diff: Tensor
    gate: Tensor | None
    x: Tensor | None
    aux: Tensor | None = None
    slope: Tensor | None = None
    opening: Tensor | None = None


def residual(params: AutoencoderParams, batch: SparseBatch, dense: bool | None = None) -> Residual:
    """Forward pass on a sparse batch, without autograd; works for every registered activation.

    dense: the path — None chooses by the batch's density (``dense_input``). Sparse: the encoder is
    one sparse product diag(x_1…x_k) · stack(E_1…E_k), O(nnz·m) instead of O(batch·n·m), and the dense
    work left is the decoder. Dense: x is scattered into a (k, batch, n) tensor and every product is a
    bmm, faster once x is no longer sparse. Both give the same numbers to float32 rounding.
    """
    cfg = params.config
    k, n, m, bsz = cfg.n_instances, cfg.n_features, cfg.d_hidden, batch.batch
    dense = dense_input(batch) if dense is None else dense
    x = batch.dense().transpose(0, 1) if dense else None                     # (k, batch, n)
    h = torch.bmm(x, params.encoder) if dense else \
        batch.times(params.encoder.reshape(k * n, m)).view(k, bsz, m)
    diff = torch.baddbmm(params.b[:, None, :], h, params.decoder.transpose(1, 2))
    act = activations.get(cfg.activation)
    pre = diff.clone() if act.auxiliary else None
    slope = act.slope(diff)
    opening = act.opening(diff, params.extra)
    diff = act.apply_(diff, params.extra, params.n_kept_tensor())
    gate = None
    if act.gated:
        gate = diff if opening is None else opening
        gate = gate if dense else gate.view(-1).index_select(0, batch.flat)
    aux = None if pre is None else act.aux_residual(pre, diff, x if dense else batch.dense().transpose(0, 1))
    if dense:
        diff = diff - x
    else:
        diff.view(-1).scatter_add_(0, batch.flat, batch.values.neg())
    return Residual(h, diff, gate, x, aux, slope, opening)


def loss_and_grads(params: AutoencoderParams, batch: SparseBatch, dense: bool | None = None,
                   sparse_grad: bool | None = None, dense_grad: bool | None = None) -> tuple[Tensor, list[Tensor]]:
    """Per-instance loss (k,) and the gradients of its sum, in the order of ``params.tensors()``.

    Hand-written backward pass of Eq. (2) (checked against autograd in the tests):
    g = (2 / (batch·n)) · (y − x) · 1[y > 0];  ∂b = Σ_batch g;  ∂W_out = gᵀ h;  ∂h = g W_out;
    ∂E = diag(x)ᵀ ∂h (ReLU and TopK; the linear model has no mask). On the sparse path, where y = 0,
    y − x = −x is non-zero only at the batch's active entries, so the mask is applied there alone. dense: the path, as in ``residual``.
    sparse_grad: whether ∂W_out and ∂h come from g's non-zero entries (None: by their fraction,
    ``sparse_output``); dense_grad: whether the sparse path's ∂E is a bmm on the dense x (None: by the
    batch's density, ``dense_transpose``). The same numbers to float32 rounding either way.
    Every activation's terms come from its hooks (``toysup.persian_rug.activations``): the gate or
    slope of dφ/dpre, AuxK's extra term, and the gradients of ``extra``, which follow the weights'.
    """
    cfg = params.config
    act = activations.get(cfg.activation)
    k, n, m, bsz = cfg.n_instances, cfg.n_features, cfg.d_hidden, batch.batch
    fwd = residual(params, batch, dense)
    g = fwd.diff
    grad_extra = act.extra_grads(fwd.opening, g, params.extra)        # before the mask, in units of y − x
    flat_g = g.view(k, bsz * n)
    # vecdot: a pairwise sum, 6-12x faster than einsum("kbn,kbn->k"), which runs as a bmm (0.85 against
    # 0.13 ms for (4, 1024, 256), 3.4 against 0.8 ms for (2, 1024, 2048); torch 2.13, one thread) and
    # closer to the float64 sum (relative error 5e-8 against 7e-5).
    loss = torch.linalg.vecdot(flat_g, flat_g) / (bsz * n)
    # threshold_backward(grad, gate, 0) zeroes grad where gate <= 0: masked_fill_ with the boolean
    # mask gave the same numbers 10-50x slower, [] gathers and scatters 3x slower than index_select and
    # scatter_ (torch 2.13, CPU).
    if fwd.gate is not None and fwd.x is not None:
        torch.ops.aten.threshold_backward.grad_input(g, fwd.gate, 0.0, grad_input=g)
    elif fwd.gate is not None:
        flat = g.view(-1)
        active = torch.ops.aten.threshold_backward(flat.index_select(0, batch.flat), fwd.gate, 0.0)
        flat.scatter_(0, batch.flat, active)
    if fwd.slope is not None:
        g.mul_(fwd.slope)
    if fwd.aux is not None:              # AuxK: its term sits on dead outputs, where y = 0 and g is 0
        g.add_(fwd.aux)
    g.mul_(2.0 / (bsz * n))
    grad_extra = [grad.mul_(2.0 / (bsz * n)) for grad in grad_extra]
    grad_b = g.sum(dim=1)
    if sparse_output(g, m) if sparse_grad is None else sparse_grad:
        active = SparseBatch.of(g)
        grad_dec = active.t_times(fwd.h.view(k * bsz, m)).view(k, n, m)
        grad_h = active.times(params.decoder.reshape(k * n, m)).view(k, bsz, m)
    else:
        grad_dec = torch.bmm(g.transpose(1, 2), fwd.h)                      # (k, n, m)
        grad_h = torch.bmm(g, params.decoder)                               # (k, batch, m)
    x = fwd.x
    if x is None and (dense_transpose(batch, m) if dense_grad is None else dense_grad):
        x = batch.dense().transpose(0, 1)
    grad_enc = torch.bmm(x.transpose(1, 2), grad_h) if x is not None else \
        batch.t_times(grad_h.view(k * bsz, m)).view(k, n, m)
    if cfg.tied:
        return loss, [grad_enc + grad_dec, grad_b, *grad_extra]
    return loss, [grad_enc, grad_dec, grad_b, *grad_extra]

