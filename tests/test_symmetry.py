import dataclasses
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from toysup.persian_rug import evaluate, symmetry, train
from toysup.persian_rug.model import AutoencoderConfig

matplotlib.use("Agg")
PROBS = [0.1, 0.3]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return {a: symmetry.train_runs([16], PROBS, [0.25, 0.5], 200, seed=3, activation=a, cache_root=root,
                                   progress=False) for a in ("relu", "linear")}


def test_train_runs_is_one_fit_per_ratio_with_the_activation(runs):
    assert list(runs["linear"]) == [(16, 0.25), (16, 0.5)]
    result = runs["linear"][16, 0.25]
    assert result.params.config == AutoencoderConfig(16, 4, 2, activation="linear")
    alone = train.fit(AutoencoderConfig(16, 4, 2, activation="linear"), PROBS, train.TrainConfig(n_steps=200),
                      seed=3, progress=False)
    torch.testing.assert_close(result.history, alone.history, rtol=0, atol=0)


def test_held_out_rows_are_the_expected_loss_of_each_instance(runs):
    table = symmetry.held_out(runs["relu"], PROBS, n_eval=512)
    assert list(table.columns) == ["n", "r", "r_real", "m", "p", "loss", "stderr", "steps", "plateau_gain",
                                   "plateau_step", "converged"]
    assert table[["r", "m", "p"]].values.tolist() == [[0.25, 4, 0.1], [0.25, 4, 0.3], [0.5, 8, 0.1], [0.5, 8, 0.3]]
    assert (table["r_real"] == table["m"] / 16).all()
    loss, se = evaluate.expected_loss(runs["relu"][16, 0.5].params, PROBS, n_samples=512)
    np.testing.assert_array_equal(table["loss"].iloc[2:], loss.double().numpy())
    np.testing.assert_array_equal(table["stderr"].iloc[2:], se.double().numpy())
    assert (table["steps"] == 200).all()
    np.testing.assert_array_equal(table["plateau_gain"].iloc[2:], runs["relu"][16, 0.5].plateau_gain().numpy())


def test_measure_starts_with_the_held_out_columns(runs):
    table = symmetry.measure(runs["relu"], PROBS, seed=0, n_eval=512, ks_rows=4, ks_samples=50)
    held = symmetry.held_out(runs["relu"], PROBS, n_eval=512)
    pd.testing.assert_frame_equal(table[held.columns], held)
    # the delta method: a relative error e of the loss is a relative error e of eq5 / loss
    np.testing.assert_allclose(table["eq5_over_loss_stderr"] / table["eq5_over_loss"],
                               table["stderr"] / table["loss"])


def test_measure_leaves_eq5_undefined_for_a_negative_diagonal(runs):
    """Eq. (5) holds for a ≥ 0 only (theory.symmetric_loss refuses a < 0): a model whose mean diagonal
    ended negative gets NaN there instead of stopping the page; the other instances keep theirs."""
    result = runs["relu"][16, 0.5]
    params = dataclasses.replace(result.params, decoder=result.params.decoder * torch.tensor([-1.0, 1.0])[:, None, None])
    table = symmetry.measure({(16, 0.5): dataclasses.replace(result, params=params)}, PROBS, seed=0, n_eval=512,
                             ks_rows=4, ks_samples=50)
    assert table["a"].iloc[0] < 0 and np.isnan(table["eq5"].iloc[0]) and np.isnan(table["eq5_over_loss"].iloc[0])
    assert table["eq5"].iloc[1] > 0


def test_linear_baseline_is_v_times_one_minus_r_and_the_authors_formula():
    p, n, m = 0.8, 100, 50
    v = p / 3 - p * p / 4
    table = pd.DataFrame({"n": [n], "m": [m], "r_real": [m / n], "p": [p], "loss": [v * 0.5]})
    out = symmetry.add_linear_baseline(table)
    assert out["linear_optimum"].iloc[0] == pytest.approx(v * 0.5)
    assert out["loss / v(1-r)"].iloc[0] == pytest.approx(1.0)
    assert out["authors_code_formula"].iloc[0] == pytest.approx(p / 3 * 49 / 100)   # off by one, no mean
    assert "linear_optimum" not in table                                          # a copy


def test_at_point_selects_nominal_p_and_r_by_size():
    table = pd.DataFrame({"n": [512, 256, 256, 128], "p": [0.1, 0.1 + 1e-12, 0.2, 0.1],
                          "r": [0.25, 0.25, 0.25, 0.5]})
    assert symmetry.at_point(table, 0.1, 0.25)["n"].tolist() == [256, 512]


def test_transform_decay_fits_the_power_law_and_where_it_reaches_one_standard_error():
    n = np.array([256, 512, 1024])
    table = pd.DataFrame({"transform": "projector", "p": 0.1, "r": 0.25, "n": n,
                          "abs_relative_change": 0.5 * (n / 256.0) ** -1, "stderr": 1e-3, "before": 1.0,
                          "after_over_eq5": 1.01, "change_over_stderr": 7.0})
    row = symmetry.transform_decay(table, ["projector"], small=256, big=1024).iloc[0]
    assert row.slope == pytest.approx(-1)
    assert (row["first"], row["last"]) == (0.5, 0.125)
    assert row.n_reach == pytest.approx(256 * 0.5 / 1e-3)        # 0.5 (n/256)^-1 = 1e-3
    flat = table.assign(abs_relative_change=0.1)
    assert math.isinf(symmetry.transform_decay(flat, ["projector"], small=256, big=1024).n_reach.iloc[0])


def test_figures_have_one_panel_per_item(runs):
    trend = pd.DataFrame({"n": [256, 512] * 2, "p": [0.1, 0.1, 0.2, 0.2], "r": 0.25, "x": [1, 2, 3, 4],
                          "y": [1.0, 0.5, 2.0, 1.0]})
    fig, axes = symmetry.trend_figure(trend, [(0.1, 0.25), (0.2, 0.25)], {"x": "x", "y": "y"})
    assert len(axes) == 2 and len(axes[0].lines) == 2
    assert len(symmetry.size_trend_figure(trend, [0.1, 0.2], {"y": "y"}, r=0.25).axes) == 2
    assert len(symmetry.training_curves(runs, PROBS, window=2).axes) == 2
    sweep = pd.concat([symmetry.held_out(runs[a], PROBS, n_eval=64).assign(activation=a) for a in runs])
    assert len(symmetry.loss_vs_ratio(sweep).axes) == len(PROBS)
    with pytest.raises(ValueError, match="one n"):
        symmetry.loss_vs_ratio(sweep.assign(n=[16, 32] * 4))
    relu = sweep[sweep["activation"] == "relu"]
    by_r = symmetry.loss_slices(relu, "r", reference=relu.assign(n=32))
    assert len(by_r.axes) == len(PROBS)
    assert len(by_r.axes[0].containers) == 2               # one error-bar series per n (16, hollow 32)
    assert len(symmetry.loss_slices(relu, "p").axes) == 2  # r = 0.25, 0.5
    with pytest.raises(ValueError, match="along"):
        symmetry.loss_slices(relu, "n")
    W, b = torch.eye(40) + 0.01, -0.1 * torch.ones(40)
    assert len(symmetry.weight_block(W, b).axes) == 2           # the matrix and its colour bar
    assert len(symmetry.weight_histograms(W).axes) == 2



def test_loss_falls_with_r_allows_the_tolerance_and_names_each_n_p():
    """Fails if the rise is measured against the wrong neighbour, over the wrong axis, or without the
    tolerance."""
    table = pd.DataFrame({"n": [64] * 6, "p": [0.1] * 3 + [0.2] * 3, "r": [0.1, 0.25, 0.45] * 2,
                          "loss": [1.0, 0.5, 0.51, 1.0, 0.9, 0.95]})   # p = 0.2 rises 5.6 % at the last r
    falls = symmetry.loss_falls_with_r(table, tolerance=0.03)
    assert falls.to_dict() == {(64, 0.1): True, (64, 0.2): False}
    assert symmetry.loss_falls_with_r(table, tolerance=0.06).all()


def test_grid_orderings_skip_a_point_left_out_of_the_claims():
    """A model dropped for not converging must leave its point out, not count as a failed ordering
    (loss_falls_with_r compares the r present; size_drop and small_p_excess use points on both sides)."""
    table = pd.DataFrame({"n": [64, 64, 64], "p": [0.1] * 3, "r": [0.1, 0.25, 0.45], "loss": [1.0, 0.5, 0.4]})
    assert symmetry.loss_falls_with_r(table.drop(index=1)).to_dict() == {(64, 0.1): True}
    rows = [(n, r, p) for n in (64, 256) for r in (0.1, 0.25) for p in (0.05, 0.4)]
    grid = pd.DataFrame(rows, columns=["n", "r", "p"])
    grid["delta_diag"] = np.where(grid["n"] == 64, 4.0, 1.0)
    grid["lyapunov"] = np.where(grid["p"] == 0.05, 2.0, 1.0)
    grid["ks_reject_fraction"] = 0.1
    kept = grid.drop(index=grid.index[(grid["n"] == 256) & (grid["r"] == 0.1) & (grid["p"] == 0.05)])
    assert symmetry.diagonal_drop(kept).to_dict() == {(0.05, 0.25): 4.0, (0.4, 0.1): 4.0, (0.4, 0.25): 4.0}
    assert symmetry.small_p_excess(kept) == (1.0, 1.0)          # over the three (n, r) with both p


def test_convergence_budget_counts_only_the_steps_of_converged_models():
    """Fails if a model at the cap (plateau_step −1) entered the median or maximum of the steps at which
    the criterion was met, or if the groups were mixed up."""
    table = pd.DataFrame({"r": [0.25, 0.25, 0.25, 0.5], "plateau_step": [1000, 3000, -1, 2000],
                          "converged": [True, True, False, True], "steps": [1250, 3750, 10000, 2500]})
    budget = symmetry.convergence_budget(table, "r")
    assert budget.loc[0.25].to_dict() == {"models": 3, "converged": 2, "median_met": 2000.0, "max_met": 3000.0,
                                          "max_steps": 10000}
    assert budget.loc[0.5, "median_met"] == 2000.0

def test_a_centred_heat_map_puts_the_centre_in_the_middle_of_the_colour_scale():
    table = pd.DataFrame({"n": [64] * 4, "p": [0.1, 0.2] * 2, "r": [0.25, 0.25, 0.45, 0.45],
                          "ratio": [0.5, 0.9, 1.2, 4.0]})
    fig = symmetry.heatmaps(table, "ratio", label="ratio", cmap="coolwarm", center=1.0)
    norm = fig.axes[0].images[0].norm
    assert norm(1.0) == pytest.approx(0.5) and norm(0.5) == pytest.approx(0.0) and norm(4.0) == pytest.approx(1.0)
    matplotlib.pyplot.close(fig)
