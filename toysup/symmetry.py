"""Chapter 2 driver: trained models over (n, p, r), their symmetry statistics, and the weight
transformations of R6 (Persian Rug §3-4.1; spec R3-R6, R9(b), R14).

One tensor is trained per (n, r) with every p as an instance (instances must share n and m), through
the disk cache (``cache.cached_fit``). ``measure`` turns the runs into one table row per (n, r, p):
held-out loss and standard error, every statistic of ``stats.symmetry_statistics``, and Eq. (5)
evaluated at the measured (a, b̃, σ). ``transform_table`` applies ``transforms`` and records the loss
change on shared samples. ``heatmaps`` draws one panel per n over (p, r) with a shared colour scale
(the paper's Figs. 3-6 layout).
"""
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from toysup import cache, checks, evaluate, stats, theory, transforms
from toysup.model import AutoencoderConfig, AutoencoderParams
from toysup.train import TrainConfig, TrainResult

RunKey = tuple[int, float]     # (n, nominal r)


def hidden_width(n_features: int, ratio: float) -> int:
    """m = max(1, round(r·n))."""
    checks.positive_int("n_features", n_features)
    checks.unit_interval("ratio", ratio)
    return max(1, min(n_features, round(ratio * n_features)))


def train_runs(n_features: Sequence[int], probs: Sequence[float], ratios: Sequence[float],
               n_steps: int, *, seed: int, device: str = "cpu", cache_root=None,
               progress: bool = True) -> dict[RunKey, TrainResult]:
    """One cached fit per (n, r), instances = ``probs``; keys (n, r) with r the nominal ratio."""
    checks.probabilities("probs", probs)
    runs = {}
    for n in n_features:
        for r in ratios:
            cfg = AutoencoderConfig(n, hidden_width(n, r), len(probs))
            runs[n, r] = cache.cached_fit(cfg, list(probs), TrainConfig(n_steps=n_steps), seed=seed,
                                          device=device, root=cache_root, progress=progress)
    return runs


def measure(runs: dict[RunKey, TrainResult], probs: Sequence[float], *, seed: int, n_eval: int,
            ks_rows: int = 200, ks_samples: int = 1000) -> pd.DataFrame:
    """One row per (n, r, p): n, r, r_real, m, p, loss, stderr, the symmetry statistics, eq5 (Eq. 5
    at the measured a, b̃, σ) and eq5_over_loss."""
    frames = []
    for (n, r), result in runs.items():
        params = result.params
        W = params.W_eff().detach()
        gen = torch.Generator(device=W.device).manual_seed(seed + n + round(1000 * r))
        table = stats.symmetry_statistics(W, params.b.detach(), torch.tensor(probs),
                                          d_hidden=params.config.d_hidden, generator=gen,
                                          ks_rows=ks_rows, ks_samples=ks_samples)
        loss, se = evaluate.expected_loss(params, probs, n_samples=n_eval)
        table.insert(0, "stderr", se.double().numpy())
        table.insert(0, "loss", loss.double().numpy())
        table.insert(0, "p", list(probs))
        table.insert(0, "m", params.config.d_hidden)
        table.insert(0, "r_real", params.config.ratio)
        table.insert(0, "r", r)
        table.insert(0, "n", n)
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    out["eq5"] = [theory.symmetric_loss(row.a, row.eff_bias, row.sigma, row.p)
                  for row in out.itertuples()]
    out["eq5_over_loss"] = out["eq5"] / out["loss"]
    return out


def add_optimum(table: pd.DataFrame) -> pd.DataFrame:
    """Adds L_star = L*(p, r) (Eq. 8, nominal r) and loss_over_Lstar; one optimisation per (p, r)."""
    optimum = {key: theory.optimal_symmetric_loss(*key).loss
               for key in sorted(set(zip(table["p"], table["r"])))}
    out = table.copy()
    out["L_star"] = [optimum[key] for key in zip(out["p"], out["r"])]
    out["loss_over_Lstar"] = out["loss"] / out["L_star"]
    return out


TRANSFORMS = ("permute", "resample rows", "projector", "scale interference")


def transform_table(params: AutoencoderParams, probs: Sequence[float], *, seed: int, n_eval: int,
                    scale_factor: float = 1.25) -> pd.DataFrame:
    """Loss change of each transformation of ``transforms`` (one row per instance and transform).

    Columns: p, transform, before, after, stderr (of one loss estimate), delta, delta_stderr
    (paired), change_over_stderr = |delta| / stderr, relative_change = delta / before (and its
    absolute value), eq5_before, eq5_after (Eq. 5 at each model's measured statistics),
    eq5_relative_change (the change Eq. 5 predicts), after_over_eq5, sigma_before, sigma_after,
    a_before, a_after.
    """
    gen = torch.Generator().manual_seed(seed)
    p = torch.tensor(list(probs))
    W0 = params.W_eff().detach()
    a0 = torch.diagonal(W0, dim1=1, dim2=2).mean(dim=1)
    made = {
        "permute": transforms.permute_features(params, gen),
        "resample rows": transforms.resample_rows(params, gen),
        "projector": transforms.projector_replacement(params, p, gen),
        "scale interference": transforms.scale_interference(params, p, scale_factor),
    }
    rows = []
    for name, new in made.items():
        change = transforms.loss_change(params, new, p, n_samples=n_eval)
        W1 = new.W_eff().detach()
        for i, pi in enumerate(probs):
            stats0 = _macro(W0[i:i + 1], params.b[i:i + 1].detach(), pi)
            stats1 = _macro(W1[i:i + 1], new.b[i:i + 1].detach(), pi)
            rows.append(dict(
                p=pi, transform=name, before=change.before[i].item(), after=change.after[i].item(),
                stderr=change.stderr[i].item(), delta=change.delta[i].item(),
                delta_stderr=change.delta_stderr[i].item(),
                eq5_before=theory.symmetric_loss(*stats0, pi),
                eq5_after=theory.symmetric_loss(*stats1, pi),
                sigma_before=stats0[2], sigma_after=stats1[2], a_before=a0[i].item(),
                a_after=stats1[0]))
    out = pd.DataFrame(rows)
    out["change_over_stderr"] = out["delta"].abs() / out["stderr"]
    out["relative_change"] = out["delta"] / out["before"]
    out["abs_relative_change"] = out["relative_change"].abs()
    out["eq5_relative_change"] = out["eq5_after"] / out["eq5_before"] - 1
    out["after_over_eq5"] = out["after"] / out["eq5_after"]
    return out


def _macro(W: torch.Tensor, b: torch.Tensor, p: float) -> tuple[float, float, float]:
    """(a, mean b̃, √ mean σ²) of one instance."""
    prob = torch.tensor([p])
    a = torch.diagonal(W, dim1=1, dim2=2).mean().item()
    eff = stats.effective_bias(W, b, prob).mean().item()
    sigma = stats.interference_variance(W, prob).mean().sqrt().item()
    return a, eff, sigma


def size_exponent(table: pd.DataFrame, column: str, *, p: float, r: float) -> float:
    """Log-log slope of ``column`` against n at one (p, r) (rows with that nominal p and r)."""
    rows = table[np.isclose(table["p"], p) & np.isclose(table["r"], r)].sort_values("n")
    if len(rows) < 2:
        raise ValueError(f"need at least two sizes at (p, r) = ({p}, {r}), got {len(rows)}")
    return float(np.polyfit(np.log(rows["n"]), np.log(rows[column]), 1)[0])


def heatmaps(table: pd.DataFrame, column: str, *, label: str, log: bool = True,
             cmap: str = "viridis") -> Figure:
    """One panel per n: ``column`` over p (x) and realised r (y), one shared colour scale."""
    sizes = sorted(table["n"].unique())
    values = table[column].to_numpy(dtype=float)
    positive = values[values > 0]
    if log and positive.size:
        norm = LogNorm(vmin=positive.min(), vmax=positive.max())
    else:
        norm = Normalize(vmin=np.nanmin(values), vmax=np.nanmax(values))
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.3 * len(sizes) + 1.2, 3.2), squeeze=False,
                             layout="constrained")
    image = None
    for ax, n in zip(axes[0], sizes):
        grid = table[table["n"] == n].pivot_table(index="r", columns="p", values=column)
        shown = np.ma.masked_invalid(grid.to_numpy(dtype=float))
        if log:
            shown = np.ma.masked_less_equal(shown, 0)
        image = ax.imshow(shown, origin="lower", aspect="auto", cmap=cmap, norm=norm,
                          interpolation="nearest")
        ax.set_xticks(range(len(grid.columns)), [f"{v:g}" for v in grid.columns])
        ax.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index])
        ax.set(xlabel="feature probability $p$", title=f"$n$ = {n}")
    axes[0][0].set_ylabel("ratio $r = m/n$")
    fig.colorbar(image, ax=axes[0].tolist(), label=label, shrink=0.9)
    return fig
