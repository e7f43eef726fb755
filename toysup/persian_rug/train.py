"""Training many autoencoders at once: Adam on a fresh batch every step (Persian Rug spec §3.2).

The objective is the SUM of the per-instance losses, so every instance gets exactly its own gradient;
Adam is elementwise, so k instances trained together follow the same trajectories as k separate runs
with the same seeds (a test checks this). Nothing couples instances: no global gradient clipping, no
shared early stop.

Protocol defaults (spec §3.2, validated against the paper's 45k-step protocol at n = 512):
Adam(β = (0.9, 0.999), eps = 1e-7), batch 1024, lr₀ = 1e-3·√(512/n), cosine decay to 1 % of lr₀
over the run. The paper itself used a constant lr = 3e-3/√n for up to 45,000 steps (spec §2.1).
"""
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from toysup import checks
from toysup.persian_rug.data import instance_probs, make_generators, sample_sparse
from toysup.persian_rug.model import AutoencoderConfig, AutoencoderParams, init_params, loss_and_grads


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule; ``lr0=None`` means the spec's 1e-3·√(512/n)."""

    n_steps: int = 3000
    batch: int = 1024
    lr0: float | None = None
    final_lr_fraction: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-7

    def __post_init__(self) -> None:
        checks.positive_int("n_steps", self.n_steps)
        checks.positive_int("batch", self.batch)
        if self.lr0 is not None and not self.lr0 > 0:
            raise ValueError(f"lr0 must be > 0 (or None for 1e-3*sqrt(512/n)), got {self.lr0!r}")
        checks.unit_interval("final_lr_fraction", self.final_lr_fraction, closed_low=True)

    def learning_rate(self, n_features: int) -> float:
        """lr₀ for models with n features."""
        return self.lr0 if self.lr0 is not None else 1e-3 * math.sqrt(512 / n_features)

    def schedule(self, step: int) -> float:
        """Multiplier of lr₀ at ``step`` (0-based): cosine from 1 to ``final_lr_fraction``."""
        f = self.final_lr_fraction
        return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * step / self.n_steps))


@dataclass
class TrainResult:
    """Trained parameters, the per-step minibatch loss of every instance, and the seeds used."""

    params: AutoencoderParams
    history: Tensor          # (n_steps, k), float32, on the CPU
    seeds: list[int]


def spawn_seeds(seed: int, n_instances: int) -> list[int]:
    """Independent per-instance seeds derived from one seed (numpy SeedSequence)."""
    children = np.random.SeedSequence(seed).spawn(n_instances)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> 1) for c in children]


def fit(model: AutoencoderConfig, feature_prob: float | Sequence[float] | Tensor,
        train: TrainConfig = TrainConfig(), *, seed: int | Sequence[int] = 0,
        device: str | torch.device = "cpu", progress: bool = True) -> TrainResult:
    """Train ``model.n_instances`` autoencoders, instance i on data with feature probability p_i.

    feature_prob: one value for all instances, or (k,) values. seed: an int (per-instance seeds are
    spawned from it) or k explicit per-instance seeds; instance i's initialisation and data depend
    on its own seed only. Returns the parameters, the (n_steps, k) loss history and the seeds.
    """
    dev = checks.device(device)
    k = model.n_instances
    p = instance_probs(feature_prob, k)
    seeds = spawn_seeds(seed, k) if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != k:
        raise ValueError(f"seed must be an int or hold n_instances={k} seeds, got {len(seeds)}")
    init_gens = make_generators(seeds, dev)
    data_gens = make_generators([s + 1 for s in seeds], dev)
    params = init_params(model, init_gens)
    tensors = params.tensors()
    lr0 = train.learning_rate(model.n_features)
    opt = torch.optim.Adam(tensors, lr=lr0, betas=train.betas, eps=train.eps, fused=True)
    history = torch.empty(train.n_steps, k, device=dev)
    bar = tqdm(range(train.n_steps), desc=f"train n={model.n_features} m={model.d_hidden} k={k}",
               disable=not progress, mininterval=1.0)
    with torch.no_grad():
        for step in bar:
            batch = sample_sparse(p, train.batch, model.n_features, data_gens)
            loss, grads = loss_and_grads(params, batch)
            for t, g in zip(tensors, grads):
                t.grad = g
            opt.param_groups[0]["lr"] = lr0 * train.schedule(step)
            opt.step()
            history[step] = loss
            if progress and (step % 100 == 0 or step == train.n_steps - 1):
                bar.set_postfix(mean_loss=f"{loss.mean().item():.3e}", refresh=False)
    return TrainResult(params=params, history=history.cpu(), seeds=seeds)
