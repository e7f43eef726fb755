"""Chapter 4 experiments: activation variants on the same linear bottleneck against the scalar bound.

Analytic side (spec R11): at each (p, r), ReLU's optimal symmetric loss L*(p, r) (Eq. 8,
``theory.optimal_symmetric_loss``), the optimal JumpReLU c·h·1[h > θ] and the bound mmse(p, s(p, r))
on every elementwise activation (``toysup.mmse``), all on the Gaussian channel with the minimal
interference std s(p, r) = sqrt(v(p)(1 − r)/r).

Trained side: for each activation of ``toysup.activations`` one batch of models y = φ(W_out W_in x + b)
with the same trainer, data, initial weights and budget, instances = (seed, p) pairs. For each trained
model: held-out loss, per-row diagonal a_i = W_ii and interference std σ_i = sqrt(v(p) Σ_{j≠i} W_ij²),
and the per-row scalar-channel bound mean_i mmse(p, σ_i/a_i) at the model's own noise level.
"""
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from toysup import activations, evaluate, mmse, stats, theory, train
from toysup.model import AutoencoderConfig

VARIANTS = ("relu", "jumprelu", "topk", "gelu", "linear")


def analytic_row(p: float, r: float) -> dict[str, float]:
    """ReLU L*, optimal JumpReLU and the MMSE bound at (p, r), with their ratios and L/(p/3)."""
    s = mmse.min_noise_std(p, r)
    relu = theory.optimal_symmetric_loss(p, r).loss
    jump = mmse.optimal_jumprelu(p, s)
    bound = mmse.mmse(p, s)
    return dict(p=p, r=r, s=s, relu=relu, jumprelu=jump.loss, mmse=bound,
                relu_over_mmse=relu / bound, jump_over_mmse=jump.loss / bound,
                relu_over_jump=relu / jump.loss, relu_per_p3=relu / (p / 3),
                jump_per_p3=jump.loss / (p / 3), mmse_per_p3=bound / (p / 3))


def analytic_table(points: Sequence[tuple[float, float]], *, regime: str = "") -> pd.DataFrame:
    """``analytic_row`` for every (p, r) in ``points``, with a ``regime`` label column."""
    table = pd.DataFrame([analytic_row(p, r) for p, r in points])
    table.insert(0, "regime", regime)
    return table


def kappa_points(kappa: float, probs: Sequence[float]) -> list[tuple[float, float]]:
    """(p, κ p ln(1/p)) for each p: the crossover line where L* is a finite fraction of p/3."""
    return [(p, kappa * p * np.log(1 / p)) for p in probs]


def train_variants(n_features: int, ratio: float, probs: Sequence[float], n_seeds: int,
                   train_config: train.TrainConfig, *, seed: int = 0,
                   variants: Sequence[str] = VARIANTS, n_eval: int = 40_960,
                   device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Train every variant on the same (seed, p) instances; one row per (variant, seed, p).

    Instance i = j·len(probs) + l has feature probability probs[l] and the i-th seed spawned from
    ``seed`` (so seed j, p_l gets the same initial W_in, W_out, b and the same data stream in every
    variant). TopK keeps K = round(p·n) units (``activations.kept_from_prob``).
    Columns: variant, seed, p, r, loss, stderr, a_mean, sigma_over_a (sqrt(mean_i σ_i²) / mean_i a_i),
    dead, row_bound, loss_over_bound, threshold_mean (JumpReLU θ, else NaN), n_kept (TopK, else NaN).
    """
    m = max(1, round(ratio * n_features))
    inst_probs = [p for _ in range(n_seeds) for p in probs]
    inst_seed = [j for j in range(n_seeds) for _ in probs]
    rows = []
    for name in variants:
        activations.get(name)
        kept = activations.kept_from_prob(inst_probs, n_features) if name == "topk" else None
        cfg = AutoencoderConfig(n_features, m, len(inst_probs), activation=name, n_kept=kept)
        fit = train.fit(cfg, inst_probs, train_config, seed=seed, device=device, progress=progress)
        loss, stderr = evaluate.expected_loss(fit.params, inst_probs, n_samples=n_eval)
        W = fit.params.W_eff().detach().double().cpu()
        P = torch.tensor(inst_probs, dtype=torch.float64)
        sigma = stats.interference_variance(W, P).sqrt().numpy()
        diag = torch.diagonal(W, dim1=1, dim2=2).numpy()
        dead = stats.dead_fraction(W).numpy()
        theta = fit.params.extra.get("threshold")
        for i, p in enumerate(inst_probs):
            bound = mmse.row_bound(p, diag[i], sigma[i]).mean()
            rows.append(dict(
                variant=name, seed=inst_seed[i], p=p, r=m / n_features, loss=float(loss[i]),
                stderr=float(stderr[i]), a_mean=float(diag[i].mean()),
                sigma_over_a=float(np.sqrt(np.mean(sigma[i] ** 2)) / diag[i].mean()),
                dead=float(dead[i]), row_bound=float(bound), loss_over_bound=float(loss[i]) / bound,
                threshold_mean=float(theta[i].mean()) if theta is not None else np.nan,
                n_kept=kept[i] if kept is not None else np.nan))
    return pd.DataFrame(rows)


def compare_to_relu(trained: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, p): mean loss over seeds with its seed standard error, and the loss ratio to the
    ReLU model of the same seed and p (paired: same initial weights and data), mean ± seed s.e."""
    relu = trained[trained["variant"] == "relu"].set_index(["seed", "p"])["loss"]
    df = trained.copy()
    df["over_relu"] = df["loss"].to_numpy() / relu.loc[list(zip(df["seed"], df["p"]))].to_numpy()

    def sem(x: pd.Series) -> float:
        return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan

    out = df.groupby(["variant", "p"], sort=False).agg(
        loss=("loss", "mean"), loss_se=("loss", sem), over_relu=("over_relu", "mean"),
        over_relu_se=("over_relu", sem), row_bound=("row_bound", "mean"),
        loss_over_bound=("loss_over_bound", "mean"), min_loss_over_bound=("loss_over_bound", "min"),
        sigma_over_a=("sigma_over_a", "mean"), dead=("dead", "mean"), r=("r", "first"))
    return out.reset_index()
