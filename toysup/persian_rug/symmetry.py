"""Chapters 1-2 driver: trained models over (n, p, r), their held-out losses and symmetry statistics,
and the weight transformations of R6 (Persian Rug §3-4.1; spec R2-R6, R9(b), R12, R14).

One tensor is trained per (n, r) with every p as an instance (instances must share n and m,
m = ``model.hidden_width(n, r)``), through the disk cache (``cache.cached_fit``); ``activation``
picks the ReLU model or its linear twin. ``held_out`` gives one table row per (n, r, p) with the
held-out loss and standard error; ``measure`` adds every statistic of ``stats.symmetry_statistics``
and Eq. (5) evaluated at the measured (a, b̃, σ); ``add_linear_baseline`` adds the linear optimum
v(p)(1-r) and the authors' code formula (R12). ``transform_table`` applies ``transforms`` and records
the loss change on shared samples (``evaluate.loss_change``); ``transform_decay`` follows that
change with n. ``at_point`` selects the rows of one (p, r) by size; ``size_drop`` (and its R3a
case ``diagonal_drop``) and ``small_p_excess`` are the grid orderings of R3a, R4 and R5,
``loss_falls_with_r`` that of R1 (a). ``convergence_budget`` summarises the steps the convergence
criterion chose (chapters 1, 2 and 4).

Figures: ``heatmaps`` draws one panel per n over (p, r) with a shared colour scale (the paper's
Figs. 3-6 layout); ``trend_lines``/``trend_figure`` draw statistics against n at reference points;
``size_trend_figure``, ``transform_figure``, ``loss_slices`` (chapter 2), ``weight_block``,
``weight_histograms``, ``training_curves`` and ``loss_vs_ratio`` (chapter 1) draw one chapter figure
each.
"""
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from toysup import checks, fits, plotting
from toysup.persian_rug import cache, evaluate, stats, theory, transforms
from toysup.persian_rug.model import AutoencoderConfig, AutoencoderParams, hidden_width
from toysup.persian_rug.train import TrainConfig, TrainResult

RunKey = tuple[int, float]     # (n, nominal r)


def train_runs(n_features: Sequence[int], probs: Sequence[float], ratios: Sequence[float],
               schedule: int | TrainConfig, *, seed: int, device: str | torch.device = "cpu",
               activation: str = "relu", cache_root=None,
               progress: bool = True) -> dict[RunKey, TrainResult]:
    """One cached fit per (n, r), instances = ``probs``; keys (n, r) with r the nominal ratio.

    schedule: Adam steps on the default cosine schedule, or a whole ``TrainConfig`` (e.g. with
    ``plateau``: each model to the convergence criterion). activation: of every model
    (``model.AutoencoderConfig``): "relu", or "linear" for the same network without the ReLU. Each
    fit depends only on its own configuration and ``seed``.
    """
    return train_sets({"runs": (n_features, probs, ratios, schedule)}, seed=seed, device=device,
                      activation=activation, cache_root=cache_root, progress=progress)["runs"]


def train_sets(sets: Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[float], int | TrainConfig]], *,
               seed: int, device: str | torch.device = "cpu", activation: str = "relu",
               cache_root=None, progress: bool = True) -> dict[str, dict[RunKey, TrainResult]]:
    """``train_runs`` of several grids, name → (n_features, probs, ratios, schedule), as one list of
    fits (``cache.cached_fits``: shared with a helper process, largest first). In a training
    helper (``storage.HELPER_ENV``) the fits another process trained are missing from the result.
    """
    fits, keys = [], []
    for name, (n_features, probs, ratios, schedule) in sets.items():
        checks.probabilities("probs", probs)
        config = schedule if isinstance(schedule, TrainConfig) else TrainConfig(n_steps=schedule)
        for n in n_features:
            for r in ratios:
                cfg = AutoencoderConfig(n, hidden_width(n, r), len(probs), activation=activation)
                fits.append((cfg, list(probs), config))
                keys.append((name, (n, r)))
    with cache.summarised():            # one line for all the grids, not one per model
        results = cache.cached_fits(fits, seed=seed, device=device, root=cache_root, progress=progress)
    out: dict[str, dict[RunKey, TrainResult]] = {name: {} for name in sets}
    for (name, key), result in zip(keys, results):
        if result is not None:
            out[name][key] = result
    return out


def held_out(runs: dict[RunKey, TrainResult], probs: Sequence[float], *,
             n_eval: int = 40_960) -> pd.DataFrame:
    """One row per (n, r, p): n, r (nominal), r_real (= m/n), m, p, the held-out loss with its
    standard error (``evaluate.expected_loss`` on n_eval samples), and the steps trained with the
    convergence criterion at the last (``TrainResult.plateau_gain``: the smoothed loss's relative
    fall over the last quarter of the steps), plateau_step (the step at which it was met, −1 if
    never or without ``TrainConfig.plateau``) and converged (``TrainResult.converged``)."""
    frames = []
    for (n, r), result in runs.items():
        params = result.params
        loss, se = evaluate.expected_loss(params, probs, n_samples=n_eval)
        frames.append(pd.DataFrame({"n": n, "r": r, "r_real": params.config.ratio,
                                    "m": params.config.d_hidden, "p": list(probs),
                                    "loss": loss.double().numpy(), "stderr": se.double().numpy(),
                                    "steps": result.steps.numpy(),
                                    "plateau_gain": result.plateau_gain().numpy(),
                                    "plateau_step": result.met_steps.numpy(),
                                    "converged": result.converged().numpy()}))
    return pd.concat(frames, ignore_index=True)


def measure(runs: dict[RunKey, TrainResult], probs: Sequence[float], *, seed: int, n_eval: int,
            ks_rows: int = 200, ks_samples: int = 1000) -> pd.DataFrame:
    """The columns of ``held_out`` (one row per (n, r, p)), then the symmetry statistics, eq5 (Eq. 5
    at the measured a, b̃, σ; NaN where the mean diagonal a < 0, outside Eq. 5's domain: a model
    with m = 3 features at n = 64 can end there), eq5_over_loss and its standard error
    eq5_over_loss_stderr (from the loss's)."""
    frames = []
    for (n, r), result in runs.items():
        params = result.params
        W = params.W_eff().detach()
        gen = torch.Generator(device=W.device).manual_seed(seed + n + round(1000 * r))
        frames.append(stats.symmetry_statistics(W, params.b.detach(), torch.tensor(probs),
                                                d_hidden=params.config.d_hidden, generator=gen,
                                                ks_rows=ks_rows, ks_samples=ks_samples))
    out = pd.concat([held_out(runs, probs, n_eval=n_eval), pd.concat(frames, ignore_index=True)],
                    axis=1)
    out["eq5"] = [theory.symmetric_loss(row.a, row.eff_bias, row.sigma, row.p) if row.a >= 0 else np.nan
                  for row in out.itertuples()]
    out["eq5_over_loss"] = out["eq5"] / out["loss"]
    out["eq5_over_loss_stderr"] = out["eq5"] * out["stderr"] / out["loss"] ** 2
    return out


def convergence_budget(table: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Per group of ``by``: models, converged (how many met the criterion), median_met and max_met
    (the steps at which the converged ones met it) and max_steps (the most steps any trained, anneal
    included). table: one row per model with the columns plateau_step, converged and steps of
    ``held_out``."""
    met = table["plateau_step"].where(table["converged"])
    return table.assign(met=met).groupby(by, sort=False).agg(
        models=("converged", "size"), converged=("converged", "sum"), median_met=("met", "median"),
        max_met=("met", "max"), max_steps=("steps", "max"))

def add_optimum(table: pd.DataFrame) -> pd.DataFrame:
    """Adds L_star = L*(p, r) (Eq. 8, nominal r) and loss_over_Lstar; one optimisation per (p, r)."""
    optimum = {key: theory.optimal_symmetric_loss(*key).loss
               for key in sorted(set(zip(table["p"], table["r"])))}
    out = table.copy()
    out["L_star"] = [optimum[key] for key in zip(out["p"], out["r"])]
    out["loss_over_Lstar"] = out["loss"] / out["L_star"]
    return out


def loss_falls_with_r(table: pd.DataFrame, tolerance: float = 0.03) -> pd.Series:
    """R1 (a) per (n, p): whether the held-out loss is non-increasing in r within ``tolerance`` (no
    step up in r raises it by more than that fraction). table: one row per (n, r, p) with "loss"; a
    missing (n, r, p) (a model left out of the claims) is skipped, the steps join the r present."""
    loss = table.pivot_table(index=["n", "p"], columns="r", values="loss")

    def falls(row: pd.Series) -> bool:
        values = row.dropna().to_numpy()
        return bool((np.diff(values) / values[:-1] <= tolerance).all())
    return loss.apply(falls, axis=1).rename("loss falls with r")


def add_linear_baseline(table: pd.DataFrame) -> pd.DataFrame:
    """Adds linear_optimum = v(p)(1 - r) (``theory.linear_loss`` at the realised r_real),
    authors_code_formula (``theory.linear_loss_authors_code`` at n, m) and "loss / v(1-r)"."""
    out = table.copy()
    out["linear_optimum"] = theory.linear_loss(out["p"], out["r_real"])
    out["authors_code_formula"] = [theory.linear_loss_authors_code(p, int(n), int(m))
                                   for p, n, m in zip(out["p"], out["n"], out["m"])]
    out["loss / v(1-r)"] = out["loss"] / out["linear_optimum"]
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
        change = evaluate.loss_change(params, new, p, n_samples=n_eval)
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


def transform_decay(table: pd.DataFrame, names: Sequence[str], *, small: int,
                    big: int) -> pd.DataFrame:
    """How the loss change of each transform in ``names`` decays with n (``table`` from
    ``transform_table`` with n and r added, one r): one row per (transform, p) with first, last
    (|relative change| at n = small and big), slope (its fitted exponent, ``size_exponent``),
    after_over_eq5 and change_over_stderr at n = big, and n_reach, the n where the fitted decay
    reaches one standard error of the loss (inf if it does not fall)."""
    out = []
    for name in names:
        of_name = table[table["transform"] == name]
        rows = of_name.set_index(["n", "p"])
        for p in of_name["p"].unique():
            first, last = (rows.loc[(n, p), "abs_relative_change"] for n in (small, big))
            slope = size_exponent(of_name, "abs_relative_change", p=p, r=of_name["r"].iloc[0])
            at_big = rows.loc[(big, p)]
            se_rel = at_big["stderr"] / at_big["before"]
            reach = big * (se_rel / last) ** (1 / slope) if slope < 0 else float("inf")
            out.append(dict(transform=name, p=p, first=first, last=last, slope=slope,
                            after_over_eq5=at_big["after_over_eq5"],
                            change_over_stderr=at_big["change_over_stderr"], n_reach=reach))
    return pd.DataFrame(out)


def size_drop(grid: pd.DataFrame, column: str, *, max_ratio: float = 1.0) -> pd.Series:
    """``column`` at the smallest grid n over ``column`` at the largest, per (p, r) with p ≥ 0.05 and
    r ≤ ``max_ratio``; > 1 where it falls with n. A (p, r) missing at either size (a model left out of
    the claims) is left out."""
    sel = grid[(grid["p"] >= 0.05) & (grid["r"] <= max_ratio)]
    small, big = sel["n"].min(), sel["n"].max()
    return (sel[sel["n"] == small].set_index(["p", "r"])[column]
            / sel[sel["n"] == big].set_index(["p", "r"])[column]).dropna()


def diagonal_drop(grid: pd.DataFrame) -> pd.Series:
    """R3a's ``size_drop``: Δdiag at the smallest grid n over the largest, at p ≥ 0.05, r ≤ 0.45."""
    return size_drop(grid, "delta_diag", max_ratio=0.45)


def small_p_excess(grid: pd.DataFrame, low: float = 0.05, high: float = 0.4) -> tuple[float, float]:
    """R5's orderings over the grid's (n, r): the fraction where Λ at p = ``low`` exceeds Λ at
    p = ``high``, and the fraction where the KS rejection fraction at ``low`` is at least that at ``high``;
    over the (n, r) that have both (a model left out of the claims leaves its (n, r) out)."""
    by_p = grid.set_index(["n", "r", "p"])
    at_low, at_high = by_p.xs(low, level="p").align(by_p.xs(high, level="p"), join="inner")
    return (float((at_low["lyapunov"] > at_high["lyapunov"]).mean()),
            float((at_low["ks_reject_fraction"] >= at_high["ks_reject_fraction"]).mean()))


def _macro(W: torch.Tensor, b: torch.Tensor, p: float) -> tuple[float, float, float]:
    """(a, mean b̃, √ mean σ²) of one instance (``stats.macro_statistics``)."""
    a, eff, sigma = stats.macro_statistics(W, b, torch.tensor([p]))
    return a.item(), eff.item(), sigma.item()


def at_point(table: pd.DataFrame, p: float, r: float) -> pd.DataFrame:
    """The rows of ``table`` at nominal feature probability p and ratio r (``np.isclose``), by n."""
    return table[np.isclose(table["p"], p) & np.isclose(table["r"], r)].sort_values("n")


def size_exponent(table: pd.DataFrame, column: str, *, p: float, r: float) -> float:
    """Log-log slope of ``column`` against n at one (p, r) (``at_point``), from ``fits.power_law``."""
    rows = at_point(table, p, r)
    if len(rows) < 2:
        raise ValueError(f"need at least two sizes at (p, r) = ({p}, {r}), got {len(rows)}")
    return fits.power_law(rows["n"], rows[column]).slope


def heatmaps(table: pd.DataFrame, column: str, *, label: str, log: bool = True,
             cmap: str = "viridis", center: float | None = None) -> Figure:
    """One panel per n: ``column`` over p (x) and realised r (y), one shared colour scale.

    center: a value at the middle of a diverging scale (linear on each side of it; ``log`` then
    ignored), e.g. 1 for a ratio to a reference, with a diverging ``cmap``.
    """
    sizes = sorted(table["n"].unique())
    values = table[column].to_numpy(dtype=float)
    positive = values[values > 0]
    low, high = np.nanmin(values), np.nanmax(values)
    if center is not None:
        norm = TwoSlopeNorm(vcenter=center, vmin=min(low, center - 1e-9), vmax=max(high, center + 1e-9))
        log = False
    elif log and positive.size:
        norm = LogNorm(vmin=positive.min(), vmax=positive.max())
    else:
        norm = Normalize(vmin=low, vmax=high)
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


def trend_lines(ax: Axes, table: pd.DataFrame, points: Sequence[tuple[float, float]], column: str, *,
                err: str | None = None) -> None:
    """``column`` against n (log axis) at each (p, r) of ``points`` (``at_point``), one colour each;
    with error bars from the column ``err`` if given."""
    for (p, r), color in zip(points, plotting.CYCLE):
        rows = at_point(table, p, r)
        style = dict(ms=4, color=color, label=f"p = {p}, r = {r}")
        if err is None:
            ax.plot(rows["n"], rows[column], "o-", **style)
        else:
            ax.errorbar(rows["n"], rows[column], yerr=rows[err], fmt="o-", **style)
    ax.set(xscale="log", xlabel="features $n$")


def trend_figure(table: pd.DataFrame, points: Sequence[tuple[float, float]],
                 columns: Mapping[str, str]) -> tuple[Figure, np.ndarray]:
    """One panel per column (``trend_lines``; {column: y label}), the legend in the first."""
    fig, axes = plt.subplots(1, len(columns), figsize=(3 * len(columns), 3.2), squeeze=False,
                             layout="constrained")
    for ax, (column, label) in zip(axes[0], columns.items()):
        trend_lines(ax, table, points, column)
        ax.set_ylabel(label)
    axes[0][0].legend(frameon=False, fontsize=7)
    return fig, axes[0]


def size_trend_figure(table: pd.DataFrame, probs: Sequence[float], columns: Mapping[str, str], *,
                      r: float) -> Figure:
    """One panel per p at ratio r: each column against n (markers) and the power law of its fitted
    exponent (``size_exponent``) through the first point (dashed)."""
    fig, axes = plt.subplots(1, len(probs), figsize=(10, 3.8), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, p in zip(axes[0], probs):
        rows = at_point(table, p, r)
        for (column, label), color in zip(columns.items(), plotting.CYCLE):
            slope = size_exponent(table, column, p=p, r=r)
            line = rows[column].iloc[0] * (rows["n"] / rows["n"].iloc[0]) ** slope
            plotting.measured_vs_theory(ax, rows["n"], rows[column], line,
                                        label=f"{label}, slope {slope:+.2f}", color=color, line="fit")
        ax.set(xscale="log", yscale="log", xlabel="features $n$", title=f"p = {p}, r = {r}")
    axes[0][0].set_ylabel("variance across rows")
    axes[0][-1].legend(frameon=False, fontsize=7, loc="lower left")
    return fig


def transform_figure(table: pd.DataFrame, probs: Sequence[float]) -> Figure:
    """One panel per p: relative loss change (%) of each of ``TRANSFORMS`` against n (``table`` from
    ``transform_table`` with columns n and r added), paired error bars, and a grey band of ± one
    standard error of the loss (from the permute rows); symmetric-log y axis."""
    fig, axes = plt.subplots(1, len(probs), figsize=(10, 3.8), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, p in zip(axes[0], probs):
        rows_p = table[np.isclose(table["p"], p)]
        for name, color in zip(TRANSFORMS, plotting.CYCLE):
            rows = rows_p[rows_p["transform"] == name].sort_values("n")
            ax.errorbar(rows["n"], 100 * rows["relative_change"], fmt="o-", ms=4, color=color,
                        yerr=100 * rows["delta_stderr"] / rows["before"], label=name)
        band = rows_p[rows_p["transform"] == "permute"].sort_values("n")
        half = 100 * band["stderr"] / band["before"]
        ax.fill_between(band["n"], -half, half, color="grey", alpha=0.3,
                        label="± one standard error of the loss")
        ax.axhline(0, color="black", lw=0.8)
        ax.set(xscale="log", yscale="symlog", xlabel="features $n$",
               title=f"p = {p}, r = {rows_p['r'].iloc[0]:g}")
    axes[0][0].set_ylabel("loss change (%)")
    axes[0][-1].legend(frameon=False, fontsize=7)
    return fig


def weight_block(W: torch.Tensor, b: torch.Tensor, *, block: int = 30) -> Figure:
    """The paper's Fig. 2a: the top-left block × block of one W (n, n), a blank column, then the
    first ``block`` biases b (n,), on a diverging map centred on zero."""
    picture = np.full((block, block + 2), np.nan)
    picture[:, :block] = W[:block, :block].cpu().numpy()
    picture[:, block + 1] = b[:block].cpu().numpy()
    fig, ax = plt.subplots(figsize=(6.5, 5.2), layout="constrained")
    plotting.signed_matrix(ax, picture, label="weight value")
    ticks = list(range(0, block, 10))
    ax.set_xticks(ticks + [block + 1], [str(t) for t in ticks] + ["$b_i$"])
    ax.set(xlabel="input feature $j$ (then the bias $b_i$)", ylabel="output feature $i$")
    return fig


def weight_histograms(W: torch.Tensor) -> Figure:
    """Histograms of the diagonal (left) and the off-diagonal entries (right, log counts) of one
    W (n, n)."""
    W = W.detach().cpu()
    off = W[~torch.eye(W.shape[0], dtype=torch.bool)].numpy()
    fig, (ax_d, ax_o) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    ax_d.hist(torch.diagonal(W).numpy(), bins=30, color=plotting.OKABE_ITO["blue"])
    ax_d.set(xlabel="diagonal entry $W_{ii}$", ylabel="number of features")
    ax_o.hist(off, bins=100, color=plotting.OKABE_ITO["vermillion"], log=True)
    ax_o.set(xlabel="off-diagonal entry $W_{ij}$", ylabel="number of entries (log)")
    return fig


def training_curves(runs: Mapping[str, dict[RunKey, TrainResult]], probs: Sequence[float], *,
                    window: int) -> Figure:
    """Running mean over ``window`` steps of the minibatch loss, one panel per (n, r) of
    runs["relu"] (solid) and runs["linear"] (dotted), one colour per p, with the linear optimum
    v(p)(1 - r) at the nominal r (dashed)."""
    keys = list(runs["relu"])
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.4), sharey=True,
                             squeeze=False, layout="constrained")
    for ax, (n, r) in zip(axes[0], keys):
        for j, (p, color) in enumerate(zip(probs, plotting.CYCLE)):
            for activation, style in (("relu", "-"), ("linear", ":")):
                curve = runs[activation][n, r].history[:, j].numpy()
                smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
                ax.plot(np.arange(len(smooth)) + window, smooth, style, color=color, lw=1.2,
                        label=f"p = {p}" if activation == "relu" else None)
            ax.axhline(theory.linear_loss(p, r), ls="--", color=color, lw=0.8)
        ax.set(yscale="log", xlabel="Adam step", title=f"r = {r}")
    axes[0][0].set_ylabel("minibatch loss $L$ (per feature)")
    axes[0][0].legend(frameon=False, fontsize=8)
    return fig


def loss_vs_ratio(table: pd.DataFrame) -> Figure:
    """One panel per p: held-out loss against the realised r of the ReLU and linear rows of
    ``table`` (``held_out`` rows of one n with an activation column) with the symmetric optimum
    L*, the linear optimum v(p)(1 - r), the authors' code formula and p/3."""
    n = int(table["n"].iloc[0])
    if (table["n"] != n).any():
        raise ValueError(f"table must hold one n, got {sorted(table['n'].unique())}")
    probs = sorted(table["p"].unique())
    fig, axes = plt.subplots(1, len(probs), figsize=(2.8 * len(probs), 3.3), squeeze=False,
                             layout="constrained")
    r_line = np.linspace(0.02, 0.95, 100)
    widths = np.array([hidden_width(n, r) for r in r_line])
    red, blue = plotting.OKABE_ITO["vermillion"], plotting.OKABE_ITO["blue"]
    for ax, p in zip(axes[0], probs):
        rows = table[table["p"] == p]
        relu, linear = rows[rows["activation"] == "relu"], rows[rows["activation"] == "linear"]
        ax.errorbar(relu["r_real"], relu["loss"], yerr=relu["stderr"], fmt="o", ms=4, color=red,
                    label="ReLU, measured")
        ax.plot(r_line, theory.optimal_symmetric_loss(p, r_line).loss, "--", lw=1.2, color=red,
                label="ReLU, symmetric optimum $L^*$")
        ax.errorbar(linear["r_real"], linear["loss"], yerr=linear["stderr"], fmt="s", ms=4,
                    mfc="none", color=blue, label="linear, measured")
        ax.plot(r_line, theory.linear_loss(p, r_line), "--", lw=1.2, color=blue,
                label="linear optimum $v(p)(1-r)$")
        ax.plot(r_line, theory.linear_loss_authors_code(p, n, widths), ":",
                color=plotting.OKABE_ITO["black"], label="authors' code formula")
        ax.axhline(p / 3, color="grey", lw=0.8, label="$p/3$ (zero output)")
        ax.set(xlabel="ratio $r = m/n$", title=f"p = {p}", ylim=(0, 1.08 * p / 3))
    axes[0][0].set_ylabel("held-out loss $L$ (per feature)")
    axes[0][-1].legend(frameon=False, fontsize=7)
    return fig


def loss_slices(table: pd.DataFrame, along: str, *, reference: pd.DataFrame | None = None) -> Figure:
    """The paper's two loss figures (spec R9): the held-out loss against r, one panel per p
    (``along="r"``), or against p, one panel per nominal r (``along="p"``): one marker series per
    n with its standard errors, the symmetric optimum L* (Eq. 8) dashed and the linear optimum
    v(p)(1 − r) dotted. reference: rows of other models (same columns) drawn hollow where their p (or r)
    is a panel's, labelled "(fixed schedule)". table: ``held_out`` rows (n, r, r_real, p, loss, stderr)."""
    if along not in ("r", "p"):
        raise ValueError(f"along must be 'r' or 'p', got {along!r}")
    panel = "p" if along == "r" else "r"
    x = "r_real" if along == "r" else "p"
    values = sorted(table[panel].unique())
    fig, axes = plt.subplots(1, len(values), figsize=(2.8 * len(values) + 1.8, 3.3), squeeze=False,
                             layout="constrained")
    sizes = sorted(set(table["n"]) | (set() if reference is None else set(reference["n"])))
    colors = dict(zip(sizes, plotting.CYCLE))
    for ax, value in zip(axes[0], values):
        for frame, hollow in ((table, False), (reference, True)):
            if frame is None:
                continue
            for n, group in frame[np.isclose(frame[panel], value)].groupby("n"):
                group = group.sort_values(x)
                ax.errorbar(group[x], group["loss"], yerr=group["stderr"], fmt="o" if not hollow else "s",
                            ms=4, color=colors[n], mfc="none" if hollow else colors[n],
                            label=f"n = {n}" + (" (fixed schedule)" if hollow else ""))
        if along == "r":
            p_line, r_line = value, np.linspace(0.02, 0.95, 40)
            ax.set(xlabel="ratio $r = m/n$", title=f"loss at p = {value:g}")
        else:
            p_line, r_line = np.geomspace(min(table["p"]), max(table["p"]), 40), value
            ax.set(xscale="log", yscale="log", xlabel="feature probability $p$", title=f"loss at r = {value:g}")
            probs = sorted(table["p"].unique())
            ax.set_xticks(probs, [f"{p:g}" for p in probs], minor=False)
            ax.set_xticks([], minor=True)
        line = r_line if along == "r" else p_line
        ax.plot(line, theory.optimal_symmetric_loss(p_line, r_line).loss, "--", color="black", lw=1.2,
                label="symmetric optimum $L^*$")
        ax.plot(line, theory.linear_loss(p_line, r_line), ":", color=plotting.OKABE_ITO["blue"],
                label="linear optimum $v(p)(1-r)$")
    axes[0][0].set_ylabel("held-out loss $L$ (per feature)")
    entries = {}                      # every panel's series once (the hollow ones sit on some panels only)
    for ax in axes[0]:
        entries.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(entries.values(), entries.keys(), loc="outside right upper", frameon=False, fontsize=7)
    return fig
