"""Chapter 4 experiments: activation variants on the same linear bottleneck against the scalar bound.

Analytic side (spec R11): at each (p, r), ReLU's optimal symmetric loss L*(p, r) (Eq. 8,
``theory.optimal_symmetric_loss``), the optimal JumpReLU c·h·1[h > θ] and the bound mmse(p, s(p, r))
on every elementwise activation (``toysup.mmse``), all on the Gaussian channel with the minimal
interference std s(p, r) = sqrt(v(p)(1 − r)/r) (``theory.min_interference_std``).

Trained side: for each activation in ``ACTIVATIONS`` (names in ``toysup.activations``) one batch of
models y = φ(W_out W_in x + b) with the same trainer, data, initial weights and budget, instances =
(seed, p) pairs. For each trained
model: held-out loss, per-row diagonal a_i = W_ii and interference std σ_i = sqrt(v(p) Σ_{j≠i} W_ij²),
and the per-row scalar-channel bound mean_i mmse(p, σ_i/a_i) at the model's own noise level, and
the large-n floor mmse(p, s)/L*(p, r): the most any elementwise activation can gain over ReLU.
"""
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from toysup import fits
from toysup.persian_rug import activations, cache, evaluate, mmse, stats, theory, train
from toysup.persian_rug.model import AutoencoderConfig, hidden_width

ACTIVATIONS = ("relu", "jumprelu", "topk", "topk_aux", "gelu", "linear")   # the activations chapter 4 compares
LOSSES = ("relu", "jumprelu", "mmse")   # the analytic losses of ``analytic_row``
FIXED_REGIME = "r = 0.1"                # the spec's R11 rows at fixed r, in absolute units


def analytic_row(feature_prob: float, ratio: float) -> dict[str, float]:
    """ReLU L*, optimal JumpReLU and the MMSE bound at (p, r), with their ratios, L/(p/3) and the
    unit p²(1 − r)/r of the s → 0 limits (``unit``)."""
    p, r = feature_prob, ratio
    s = float(theory.min_interference_std(p, r))
    relu = theory.optimal_symmetric_loss(p, r).loss
    jump = mmse.optimal_jumprelu(p, s)
    bound = mmse.mmse(p, s)
    return dict(p=p, r=r, s=s, relu=relu, jumprelu=jump.loss, mmse=bound,
                relu_over_mmse=relu / bound, jump_over_mmse=jump.loss / bound,
                relu_over_jump=relu / jump.loss, relu_per_p3=relu / (p / 3),
                jump_per_p3=jump.loss / (p / 3), mmse_per_p3=bound / (p / 3),
                unit=p ** 2 * (1 - r) / r)


def analytic_table(points: Sequence[tuple[float, float]], *, regime: str = "") -> pd.DataFrame:
    """``analytic_row`` for every (p, r) in ``points``, with a ``regime`` label column."""
    table = pd.DataFrame([analytic_row(p, r) for p, r in points])
    table.insert(0, "regime", regime)
    return table


def kappa_points(kappa: float, probs: Sequence[float]) -> list[tuple[float, float]]:
    """(p, κ p ln(1/p)) for each p: the crossover line where L* is a finite fraction of p/3."""
    return [(p, kappa * p * np.log(1 / p)) for p in probs]


def r11_table(probs_fixed: Sequence[float], probs_kappa: Sequence[float], *,
              kappas: Sequence[float] = (1.0, 3.0, 0.5)) -> pd.DataFrame:
    """The spec's R11 table: ``analytic_table`` at r = 0.1 for ``probs_fixed`` (regime
    ``FIXED_REGIME``), then on the crossover line r = κ p ln(1/p) for ``probs_kappa``, per κ."""
    return pd.concat([
        analytic_table([(p, 0.1) for p in probs_fixed], regime=FIXED_REGIME),
        *[analytic_table(kappa_points(kappa, probs_kappa), regime=f"r = {kappa} p ln(1/p)")
          for kappa in kappas]], ignore_index=True)


SPEC_R11 = pd.DataFrame({  # spec R11 table: ReLU, JumpReLU, MMSE (absolute at r = 0.1, else L/(p/3))
    "regime": [FIXED_REGIME] * 5 + ["r = 1.0 p ln(1/p)"] * 4 + ["r = 3.0 p ln(1/p)"] * 4
              + ["r = 0.5 p ln(1/p)"] * 4,
    "relu": [2.635e-2, 9.963e-4, 1.155e-5, 1.352e-7, 1.610e-9, 0.633, 0.655, 0.659, 0.660,
             0.202, 0.212, 0.206, 0.200, 0.884, 0.925, 0.944, 0.956],
    "jumprelu": [2.655e-2, 1.013e-3, 7.789e-6, 5.390e-8, 4.068e-10, 0.679, 0.691, 0.684, 0.675,
                 0.196, 0.195, 0.179, 0.166, 0.914, 0.946, 0.960, 0.968],
    "mmse": [2.577e-2, 8.858e-4, 7.018e-6, 5.096e-8, 3.964e-10, 0.616, 0.637, 0.637, 0.633,
             0.170, 0.172, 0.161, 0.152, 0.868, 0.914, 0.937, 0.951]})
SPEC_R11_PROBS = ([1e-1, 1e-2, 1e-3, 1e-4, 1e-5], [1e-2, 1e-3, 1e-4, 1e-5])   # p at fixed r; on κ lines


def r11_errors(table: pd.DataFrame, spec: pd.DataFrame = SPEC_R11) -> pd.DataFrame:
    """``r11_table`` against the spec's (default ``SPEC_R11``, for ``r11_table(*SPEC_R11_PROBS)``),
    row by row: absolute losses in ``FIXED_REGIME``, L/(p/3) elsewhere. ``spec`` has the columns
    regime and those of ``LOSSES``, rows in ``table``'s order (a different regime order raises
    ValueError). Long format, one row per (row, loss): regime, p, column, measured, spec,
    rel_err = measured / spec − 1."""
    if list(table["regime"]) != list(spec["regime"]):
        raise ValueError("table: its regimes must match the spec's row by row; build it with "
                         "r11_table(*SPEC_R11_PROBS)")
    fixed = table["regime"] == FIXED_REGIME
    rows = []
    for col in LOSSES:
        measured = np.where(fixed, table[col], table[f"{'jump' if col == 'jumprelu' else col}_per_p3"])
        rows.append(pd.DataFrame({"regime": table["regime"], "p": table["p"], "column": col,
                                  "measured": measured, "spec": spec[col]}))
    errors = pd.concat(rows, ignore_index=True)
    errors["rel_err"] = errors["measured"] / errors["spec"] - 1
    return errors


def ratio_slopes(table: pd.DataFrame) -> pd.DataFrame:
    """Log-log slope of each of ``LOSSES`` against (1 − r)/r, per p of an ``analytic_table`` over r
    (``fits.power_law``; 1 when a loss scales like (1 − r)/r). Columns: p, loss, slope."""
    return pd.DataFrame([dict(p=p, loss=col, slope=fits.power_law((1 - rows["r"]) / rows["r"],
                                                                  rows[col]).slope)
                         for p, rows in table.groupby("p") for col in LOSSES])


def gap_over_cap(table: pd.DataFrame) -> pd.Series:
    """(ReLU/MMSE) / max(1.35, ln(1/p)/2) at every row of an ``analytic_table`` with r ≥ p ln(1/p):
    at most 1 where ReLU's gap to the bound is set by p alone."""
    crossed = table[table["r"] >= table["p"] * np.log(1 / table["p"])]
    return crossed["relu_over_mmse"] / np.maximum(1.35, 0.5 * np.log(1 / crossed["p"]))


def train_variants(n_features: int, ratio: float, probs: Sequence[float], n_seeds: int,
                   train_config: train.TrainConfig, *, seed: int = 0,
                   names: Sequence[str] = ACTIVATIONS, n_eval: int = 40_960,
                   device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Train every activation in ``names`` on the same (seed, p) instances, m = ``hidden_width(n, r)``;
    one row per (variant, seed, p).

    Instance i = j·len(probs) + l has feature probability probs[l] and the i-th seed spawned from
    ``seed`` (so seed j, p_l gets the same initial W_in, W_out, b and the same data stream in every
    variant). TopK keeps K = round(p·n) units (``activations.kept_from_prob``). Models come through
    the disk cache (``cache.cached_fit``; one line for all variants).
    Columns: variant, seed, p, r, loss, stderr, a_mean, sigma_over_a (sqrt(mean_i σ_i²) / mean_i a_i),
    dead, row_bound, loss_over_bound, threshold_mean (JumpReLU θ, else NaN), n_kept (TopK, else NaN),
    steps, plateau_gain (the convergence criterion, ``train.TrainResult.plateau_gain``), plateau_step
    (with ``train_config.plateau``: the step at which the criterion was met, −1 if never; else −1) and
    converged (``train.TrainResult.converged``).
    """
    m = hidden_width(n_features, ratio)
    inst_probs = [p for _ in range(n_seeds) for p in probs]
    inst_seed = [j for j in range(n_seeds) for _ in probs]
    results = {}
    with cache.summarised():
        for name in names:
            kept = activations.kept_from_prob(inst_probs, n_features) if activations.get(name).keeps_k else None
            cfg = AutoencoderConfig(n_features, m, len(inst_probs), activation=name, n_kept=kept)
            results[name] = cache.cached_fit(cfg, inst_probs, train_config, seed=seed, device=device,
                                              progress=progress)
    rows = []
    for name, fit in results.items():
        kept = fit.params.config.n_kept
        loss, stderr = evaluate.expected_loss(fit.params, inst_probs, n_samples=n_eval)
        W = fit.params.W_eff().detach().double().cpu()
        P = torch.tensor(inst_probs, dtype=torch.float64)
        sigma = stats.interference_variance(W, P).sqrt().numpy()
        diag = torch.diagonal(W, dim1=1, dim2=2).numpy()
        dead = stats.dead_fraction(W).numpy()
        theta = fit.params.extra.get("threshold")
        gain, met, converged = fit.plateau_gain().numpy(), fit.met_steps.numpy(), fit.converged().numpy()
        for i, p in enumerate(inst_probs):
            bound = mmse.row_bound(p, diag[i], sigma[i]).mean()
            rows.append(dict(
                variant=name, seed=inst_seed[i], p=p, r=m / n_features, loss=float(loss[i]),
                stderr=float(stderr[i]), a_mean=float(diag[i].mean()),
                sigma_over_a=float(np.sqrt(np.mean(sigma[i] ** 2)) / diag[i].mean()),
                dead=float(dead[i]), row_bound=float(bound), loss_over_bound=float(loss[i]) / bound,
                threshold_mean=float(theta[i].mean()) if theta is not None else np.nan,
                n_kept=kept[i] if kept is not None else np.nan, steps=int(fit.steps[i]),
                plateau_gain=float(gain[i]), plateau_step=int(met[i]), converged=bool(converged[i])))
    return pd.DataFrame(rows)


def converged_pairs(trained: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``train_variants`` rows into (kept, dropped): a model is kept when it converged and so
    did the ReLU model of its seed and p, which every paired comparison divides by; dropped rows get
    a column ``reason``."""
    relu_ok = trained[trained["variant"] == "relu"].set_index(["seed", "p"])["converged"]
    partner = relu_ok.loc[list(zip(trained["seed"], trained["p"]))].to_numpy()
    own = trained["converged"].to_numpy()
    keep = own & partner
    dropped = trained[~keep].assign(reason=np.where(~own[~keep], "did not converge within the step cap",
                                                    "its ReLU partner did not converge"))
    return trained[keep].reset_index(drop=True), dropped.reset_index(drop=True)


def _over_relu(trained: pd.DataFrame) -> np.ndarray:
    """Each model's loss over the loss of the ReLU model of the same seed and p."""
    relu = trained[trained["variant"] == "relu"].set_index(["seed", "p"])["loss"]
    return trained["loss"].to_numpy() / relu.loc[list(zip(trained["seed"], trained["p"]))].to_numpy()


def compare_to_relu(trained: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, p): mean loss over seeds with its seed standard error, and the loss ratio to the
    ReLU model of the same seed and p (paired: same initial weights and data), mean ± seed s.e.

    Also the large-n analytic values at the realised r (``analytic_row``): mmse_min (the bound at the
    minimal interference), L_star (ReLU's optimum) and floor_over_relu = mmse_min / L_star."""
    df = trained.copy()
    df["over_relu"] = _over_relu(trained)

    def sem(x: pd.Series) -> float:
        return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan

    out = df.groupby(["variant", "p"], sort=False).agg(
        loss=("loss", "mean"), loss_se=("loss", sem), over_relu=("over_relu", "mean"),
        over_relu_se=("over_relu", sem), row_bound=("row_bound", "mean"),
        loss_over_bound=("loss_over_bound", "mean"), min_loss_over_bound=("loss_over_bound", "min"),
        sigma_over_a=("sigma_over_a", "mean"), dead=("dead", "mean"), r=("r", "first"))
    out = out.reset_index()
    floor = {p: analytic_row(p, r) for p, r in dict(zip(out["p"], out["r"])).items()}
    out["mmse_min"] = [floor[p]["mmse"] for p in out["p"]]
    out["L_star"] = [floor[p]["relu"] for p in out["p"]]
    out["floor_over_relu"] = out["mmse_min"] / out["L_star"]
    return out


def per_seed_margins(trained: pd.DataFrame, comparison: pd.DataFrame) -> pd.DataFrame:
    """``trained`` (one row per model) with over_relu (loss over the same seed's ReLU loss), the
    large-n floor_over_relu of ``compare_to_relu``'s ``comparison`` and margin = over_relu / floor:
    below 1 where a model beats ReLU by more than any elementwise activation can at large n."""
    per_seed = trained.merge(comparison[["variant", "p", "floor_over_relu"]], on=["variant", "p"])
    per_seed["over_relu"] = _over_relu(per_seed)
    per_seed["margin"] = per_seed["over_relu"] / per_seed["floor_over_relu"]
    return per_seed
