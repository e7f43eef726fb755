"""Training many autoencoders at once: Adam on a fresh batch every step (Persian Rug spec §3.2).

The objective is the SUM of the per-instance losses, so every instance gets exactly its own gradient;
Adam is elementwise, so k instances trained together follow the same trajectories as k separate runs
with the same seeds (a test checks this). Nothing couples instances: no global gradient clipping, and
with ``TrainConfig.plateau`` each instance stops on its own loss (``plateau_gain``). A step's
products run in blocks of instances (``instance_blocks``): one bmm over a large (k, batch, n) block
loses to blocks of about 2^20 floats (measured in bench/train_throughput.py, section "blocks").

Protocol defaults (spec §3.2, validated against the paper's 45k-step protocol at n = 512):
Adam(β = (0.9, 0.999), eps = 1e-7), batch 1024, lr₀ = 1e-3·√(512/n), cosine decay to 1 % of lr₀
over ``n_steps``. The paper itself used a constant lr = 3e-3/√n for up to 45,000 steps (spec §2.1).

Convergence criterion (``plateau_gain``): at step t let S(u) be the mean minibatch loss of the t/8
steps before step u; an instance has converged once S(3t/4) − S(t) < ``plateau``·S(t), i.e. the last
quarter of its steps improved its smoothed loss by less than that fraction. With ``plateau`` set,
every instance trains at the constant lr₀ (the paper's protocol) and the criterion is checked every
``check_every`` steps from t = max(4·check_every, ``min_steps``) on; an instance that meets it at step t (or reaches the cap
``n_steps`` without, ``TrainResult.plateau_steps`` = −1) then anneals on its own, cosine from lr₀ to
``final_lr_fraction``·lr₀ over ⌈``ANNEAL_FRACTION``·t⌉ more steps, and stops. Instances that share a
learning rate train as one group (one Adam, one batched tensor); a group splits when some of its
instances leave the constant phase. Divergence (a non-finite loss, or one above ``DIVERGED`` times
the instance's first loss) stops training with an error naming the instance and the step.
"""
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from toysup import allocator, checks
from toysup.persian_rug.data import instance_probs, make_generators, sample_sparse
from toysup.persian_rug.model import AutoencoderConfig, AutoencoderParams, init_params, loss_and_grads

DIVERGED = 100.0        # a loss this many times the instance's first-step loss counts as divergence
BLOCK_FLOATS = 2 ** 20  # floats (4 MiB) of one block's dense pre-activation, see ``instance_blocks``
ANNEAL_FRACTION = 0.25  # with TrainConfig.plateau, the anneal after step t takes ⌈0.25·t⌉ steps
CONVERGED = 0.005       # the book's convergence threshold: plateau_gain below it counts as converged


class TrainingDiverged(RuntimeError):
    """Raised by ``fit`` when an instance's loss becomes non-finite or explodes."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule; ``lr0=None`` means the spec's 1e-3·√(512/n).

    plateau: None trains every instance ``n_steps`` steps on the cosine ``schedule``; a fraction in
    (0, 1) trains each instance at constant lr₀ until ``plateau_gain`` falls below it (``n_steps`` is
    then the cap), then anneals it (module docstring): at most ``total_steps`` steps.
    min_steps (with ``plateau``): no instance leaves the constant phase before this step. The
    criterion alone can stop inside a saddle: at n = 256, r = 1/4, p = 0.4 the smoothed loss stays at
    0.068 from step 200 to 700 and then falls to 0.059 by step 3,000; with the criterion met at step
    400 that model ended 12.5 % above the 3,000-step default (measured 2026-12-03). A floor of the
    validated default's steps makes the criterion only ever add steps.
    """

    n_steps: int = 3000
    batch: int = 1024
    lr0: float | None = None
    final_lr_fraction: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-7
    plateau: float | None = None
    check_every: int = 100
    min_steps: int = 0

    def __post_init__(self) -> None:
        checks.positive_int("n_steps", self.n_steps)
        checks.positive_int("batch", self.batch)
        checks.positive_int("check_every", self.check_every)
        if self.lr0 is not None:
            checks.finite_float("lr0", self.lr0, low=0, open_low=True)
        checks.unit_interval("final_lr_fraction", self.final_lr_fraction, closed_low=True)
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        for beta in self.betas:
            checks.finite_float("betas", beta, low=0, high=1, open_high=True)
        checks.finite_float("eps", self.eps, low=0, open_low=True)
        if self.plateau is not None and not 0 < self.plateau < 1:
            raise ValueError(f"plateau must lie in (0, 1) (or None: train n_steps), got {self.plateau!r}")
        if not 0 <= self.min_steps <= self.n_steps:
            raise ValueError(f"min_steps must lie in [0, n_steps={self.n_steps}], got {self.min_steps!r}")

    def learning_rate(self, n_features: int) -> float:
        """lr₀ for models with n features."""
        return self.lr0 if self.lr0 is not None else 1e-3 * math.sqrt(512 / n_features)

    def schedule(self, step: int, length: int | None = None) -> float:
        """Multiplier of lr₀ at ``step`` (0-based) of a cosine anneal from 1 to ``final_lr_fraction``
        over ``length`` steps (default ``n_steps``, the whole run without ``plateau``)."""
        f = self.final_lr_fraction
        return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * step / (length or self.n_steps)))

    @property
    def total_steps(self) -> int:
        """The most steps an instance can train: ``n_steps``, plus the anneal with ``plateau``."""
        if self.plateau is None:
            return self.n_steps
        return self.n_steps + math.ceil(ANNEAL_FRACTION * self.n_steps)


def plateau_gain(history: Tensor, steps: Tensor) -> Tensor:
    """(S(3t/4) − S(t)) / S(t) per instance, t = ``steps`` (k,) its steps so far and S(u) the mean
    minibatch loss of the t//8 steps before step u (module docstring). history (T, k) → (k,) float64."""
    t = steps.to(torch.int64).cpu()
    if bool((t < 8).any()):
        raise ValueError(f"steps must be >= 8 for a smoothed loss, got {int(t.min())}")
    h = history.to(torch.float64).nan_to_num(0.0).cpu()
    total = torch.cat([torch.zeros(1, h.shape[1], dtype=torch.float64), h.cumsum(0)])
    cols = torch.arange(h.shape[1])

    w = torch.div(t, 8, rounding_mode="floor")

    def smoothed(u: Tensor) -> Tensor:
        return (total[u, cols] - total[u - w, cols]) / w

    now = smoothed(t)
    return (smoothed(torch.div(3 * t, 4, rounding_mode="floor")) - now) / now


@dataclass
class TrainResult:
    """Trained parameters, the per-step minibatch loss of every instance, and the seeds used.

    history is NaN after an instance stopped (``TrainConfig.plateau``); ``steps`` counts its steps.
    plateau_steps (with ``TrainConfig.plateau`` only): the step at which each instance met the
    convergence criterion, −1 where it reached the cap without.
    """

    params: AutoencoderParams
    history: Tensor          # (total_steps, k), float32, on the CPU
    seeds: list[int]
    plateau_steps: Tensor | None = None   # (k,) int64

    @property
    def steps(self) -> Tensor:
        """(k,) int64: the steps each instance trained."""
        return self.history.isfinite().sum(dim=0)

    def plateau_gain(self) -> Tensor:
        """(k,) the convergence criterion at each instance's last step (see ``plateau_gain``)."""
        return plateau_gain(self.history, self.steps)

    def converged(self) -> Tensor:
        """(k,) bool: whether each instance met the criterion. With ``TrainConfig.plateau``: within
        its cap (``plateau_steps`` ≥ 0). Without: ``plateau_gain()`` < ``CONVERGED`` at its last step,
        a weak reading after a cosine anneal, which flattens the loss curve either way."""
        if self.plateau_steps is not None:
            return self.plateau_steps >= 0
        return self.plateau_gain() < CONVERGED

    @property
    def met_steps(self) -> Tensor:
        """(k,) int64: the step at which each instance met the criterion, −1 if it never did (or was
        trained without ``TrainConfig.plateau``)."""
        return self.plateau_steps if self.plateau_steps is not None else torch.full_like(self.steps, -1)


def spawn_seeds(seed: int, n_instances: int) -> list[int]:
    """Independent per-instance seeds derived from one seed (numpy SeedSequence)."""
    children = np.random.SeedSequence(seed).spawn(n_instances)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> 1) for c in children]


def _check_diverged(loss: Tensor, first: Tensor, members: list[int], step: int, seeds: list[int],
                    p: Tensor, lr0: float) -> None:
    """Raise TrainingDiverged for the first of ``members`` whose ``loss`` (at ``step``) is not finite
    or above ``DIVERGED`` times its ``first`` loss."""
    bad = ~loss.isfinite() | (loss > DIVERGED * first)
    if bool(bad.any()):
        j = int(bad.nonzero()[0, 0])
        i = members[j]
        raise TrainingDiverged(
            f"instance {i} (seed {seeds[i]}, feature_prob {float(p[i]):.4g}) diverged at step {step}: "
            f"loss {float(loss[j]):.4g} (first loss {float(first[j]):.4g}, lr0 {lr0:.3g}); lower lr0")


@dataclass(eq=False)
class _Group:
    """Instances that share a learning rate: the constant phase (``length`` 0) or a cosine anneal
    from step ``start`` over ``length`` steps. ``members`` are the instances' indices in ``fit``."""

    params: AutoencoderParams
    opt: torch.optim.Adam
    members: list[int]
    start: int
    length: int

    def split(self, local: list[int], start: int, length: int, train: TrainConfig) -> "_Group":
        """The members ``local`` (positions in ``members``) as a group of their own, with their
        Adam state."""
        params = self.params.select(local)
        opt = torch.optim.Adam(params.tensors(), lr=self.opt.param_groups[0]["lr"], betas=train.betas,
                               eps=train.eps, fused=True)
        for old, new in zip(self.params.tensors(), params.tensors()):
            state = self.opt.state[old]
            opt.state[new] = {"step": state["step"].clone(), "exp_avg": state["exp_avg"][local],
                              "exp_avg_sq": state["exp_avg_sq"][local]}
        return _Group(params, opt, [self.members[j] for j in local], start, length)


def instance_blocks(n_instances: int, batch: int, n_features: int) -> list[slice]:
    """Consecutive blocks of instances whose dense (block, batch, n) pre-activation holds about
    ``BLOCK_FLOATS`` floats (at least one instance per block). bench/train_throughput.py, section
    "blocks", measured the budget on two threads at batch 1024: blocks of about 2^20 floats (16
    instances at n = 64, 4 at n = 256, 2 at n = 512) were 1.3–1.6× faster per model-step than blocks
    of 2^18 at n ≤ 512, and one instance per block was fastest from n = 1024 on (larger blocks up to
    1.3× slower); on one thread the block size made no difference beyond the ±10 % noise. A block
    takes one input path, chosen by its mean density (``model.dense_input``)."""
    size = max(1, BLOCK_FLOATS // (batch * n_features))
    return [slice(start, min(start + size, n_instances)) for start in range(0, n_instances, size)]


def _blocked_step(params: AutoencoderParams, p: Tensor, generators: list[torch.Generator],
                  batch: int) -> Tensor:
    """One step's losses (k,) and gradients (set as ``.grad``), block by block (``instance_blocks``);
    each instance's data come from its own generator, so blocks change no instance's numbers."""
    cfg = params.config
    data = sample_sparse(p, batch, cfg.n_features, generators)
    blocks = instance_blocks(cfg.n_instances, batch, cfg.n_features)
    if len(blocks) == 1:                      # no slicing, no copies
        loss, grads = loss_and_grads(params, data)
    else:
        grads = [torch.empty_like(t) for t in params.tensors()]
        losses = []
        for block in blocks:
            block_loss, block_grads = loss_and_grads(params.instances(block), data.instances(block))
            for grad, block_grad in zip(grads, block_grads):
                grad[block] = block_grad
            losses.append(block_loss)
        loss = torch.cat(losses)
    for t, grad in zip(params.tensors(), grads):
        # Fused Adam (torch 2.13, CPU) reads a gradient as flat memory in the parameter's layout: a
        # transposed (non-contiguous) W_out gradient, as autograd returned it for one block, was applied
        # to the wrong entries (half of them moved up their gradient). .contiguous() is free otherwise.
        t.grad = grad.contiguous()
    return loss


def fit(model: AutoencoderConfig, feature_prob: float | Sequence[float] | Tensor,
        train: TrainConfig = TrainConfig(), *, seed: int | Sequence[int] = 0,
        device: str | torch.device = "cpu", progress: bool = True) -> TrainResult:
    """Train ``model.n_instances`` autoencoders, instance i on data with feature probability p_i.

    feature_prob: one value for all instances, or (k,) values. seed: an int (per-instance seeds are
    spawned from it) or k explicit per-instance seeds (each in [0, 2**63)); instance i's
    initialisation and data depend on its own seed only. With ``train.plateau`` an instance stops
    when it has converged (module docstring); the others go on. Returns the parameters, the
    (n_steps, k) loss history (NaN after an instance stopped) and the seeds. Raises
    TrainingDiverged naming the instance and step if a loss diverges. Keeps freed memory in the
    process (``allocator.retain_freed_memory``).
    """
    dev = checks.device(device)
    allocator.retain_freed_memory()
    k = model.n_instances
    p = instance_probs(feature_prob, k)
    if isinstance(seed, Sequence):
        seeds = [checks.instance_seed("seed", s) for s in seed]
    else:
        seeds = spawn_seeds(checks.seed("seed", seed), k)
    if len(seeds) != k:
        raise ValueError(f"seed must be an int or hold n_instances={k} seeds, got {len(seeds)}")
    data_gens = make_generators([s + 1 for s in seeds], dev)
    initial = init_params(model, make_generators(seeds, dev))
    out = [t.clone() for t in initial.tensors()]
    lr0 = train.learning_rate(model.n_features)
    opt = torch.optim.Adam(initial.tensors(), lr=lr0, betas=train.betas, eps=train.eps, fused=True)
    groups = [_Group(initial, opt, list(range(k)), 0, train.n_steps if train.plateau is None else 0)]
    plateau_steps = torch.full((k,), -1, dtype=torch.int64)
    history = torch.full((train.total_steps, k), math.nan, device=dev)
    bar = tqdm(range(train.total_steps), desc=f"train n={model.n_features} m={model.d_hidden} k={k}",
               disable=not progress, mininterval=1.0)
    with torch.no_grad():
        for step in bar:
            for group in groups:
                loss = _blocked_step(group.params, p[group.members], [data_gens[i] for i in group.members],
                                     train.batch)
                anneal = train.schedule(step - group.start, group.length) if group.length else 1.0
                group.opt.param_groups[0]["lr"] = lr0 * anneal
                group.opt.step()
                history[step, group.members] = loss
                _check_diverged(loss, history[0, group.members], group.members, step, seeds, p, lr0)
            done = step + 1
            for group in [g for g in groups if g.length and done - g.start == g.length]:
                for t, full in zip(group.params.tensors(), out):
                    full[group.members] = t
                groups.remove(group)
            if not groups:
                break
            if done % train.check_every and done != train.n_steps:
                continue
            if progress:
                bar.set_postfix(mean_loss=f"{history[step].nanmean().item():.3e}",
                                training=sum(len(g.members) for g in groups), refresh=False)
            constant = next((g for g in groups if g.length == 0), None)
            if constant is None or done < max(4 * train.check_every, train.min_steps):
                continue
            gain = plateau_gain(history[:, constant.members], torch.full((len(constant.members),), done))
            met = gain < train.plateau
            leaving = [j for j in range(len(constant.members)) if met[j] or done >= train.n_steps]
            if not leaving:
                continue
            plateau_steps[[constant.members[j] for j in leaving if met[j]]] = done
            groups.append(constant.split(leaving, done, math.ceil(ANNEAL_FRACTION * done), train))
            groups.remove(constant)
            staying = [j for j in range(len(constant.members)) if j not in leaving]
            if staying:
                groups.append(constant.split(staying, 0, 0, train))
    bar.close()
    return TrainResult(params=initial.with_tensors(out), history=history.cpu(), seeds=seeds,
                       plateau_steps=None if train.plateau is None else plateau_steps)
