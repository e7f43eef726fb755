"""Chapter 4's analytic comparison of activations (toysup.persian_rug.variants): the spec's R11 table,
the shared (1 - r)/r scaling, and the paired comparison of trained variants with ReLU."""
import numpy as np
import pandas as pd
import pytest

from toysup.persian_rug import variants


@pytest.fixture(scope="module")
def r11():
    return variants.r11_table(*variants.SPEC_R11_PROBS)


def test_r11_table_reproduces_the_spec_within_two_percent(r11):
    assert list(r11["regime"]) == list(variants.SPEC_R11["regime"])
    errors = variants.r11_errors(r11)
    assert len(errors) == 3 * len(r11)
    assert errors["rel_err"].abs().max() <= 0.02
    # the bound is below every activation's loss, and the kappa rows lie on r = kappa p ln(1/p)
    assert (r11["mmse"] <= r11["jumprelu"]).all() and (r11["mmse"] <= r11["relu"]).all()
    on_line = r11[r11["regime"] == "r = 3.0 p ln(1/p)"]
    np.testing.assert_allclose(on_line["r"], 3.0 * on_line["p"] * np.log(1 / on_line["p"]))


def test_r11_errors_refuses_a_table_in_another_order(r11):
    with pytest.raises(ValueError, match="table"):
        variants.r11_errors(r11.iloc[::-1].reset_index(drop=True))


def test_ratio_slopes_are_one_for_losses_proportional_to_one_minus_r_over_r():
    r = np.geomspace(0.03, 0.5, 5)
    table = pd.DataFrame({"p": np.repeat([1e-3, 1e-2], 5), "r": np.tile(r, 2)})
    for k, col in enumerate(variants.LOSSES):
        table[col] = (k + 1) * table["p"] ** 2 * (1 - table["r"]) / table["r"]
    slopes = variants.ratio_slopes(table)
    assert len(slopes) == 6 and list(slopes.columns) == ["p", "loss", "slope"]
    np.testing.assert_allclose(slopes["slope"], 1.0)


def test_gap_over_cap_only_counts_points_past_the_crossover():
    table = pd.DataFrame({"p": [0.01, 0.1, 1e-4], "r": [0.01, 0.5, 0.1], "relu_over_mmse": [9.0, 1.35, 2.0]})
    capped = variants.gap_over_cap(table)      # r = 0.01 < 0.01 ln(100) = 0.046 is left out
    # the cap is 1.35 at p = 0.1 (ln(10)/2 = 1.15 is smaller), ln(1/p)/2 at p = 1e-4
    np.testing.assert_allclose(capped, [1.0, 2.0 / (0.5 * np.log(1e4))])


def test_paired_comparison_with_relu_and_the_large_n_floor():
    trained = pd.DataFrame({
        "variant": ["relu", "relu", "gelu", "gelu"], "seed": [0, 1, 0, 1], "p": [0.1] * 4,
        "r": [0.25] * 4, "loss": [1.0, 2.0, 1.5, 2.0], "row_bound": [0.5] * 4,
        "loss_over_bound": [2.0, 4.0, 3.0, 4.0], "sigma_over_a": [0.1] * 4, "dead": [0.0] * 4})
    comparison = variants.compare_to_relu(trained)
    gelu = comparison.set_index("variant").loc["gelu"]
    assert gelu["over_relu"] == pytest.approx(1.25) and gelu["loss"] == pytest.approx(1.75)
    row = variants.analytic_row(0.1, 0.25)
    assert gelu["mmse_min"] == row["mmse"] and gelu["L_star"] == row["relu"]
    assert 0 < gelu["floor_over_relu"] < 1                  # the bound is below ReLU's optimum
    per_seed = variants.per_seed_margins(trained, comparison)
    np.testing.assert_allclose(per_seed["over_relu"], [1.0, 1.0, 1.5, 1.0])
    np.testing.assert_allclose(per_seed["margin"], per_seed["over_relu"] / gelu["floor_over_relu"])


def test_converged_pairs_drop_a_model_and_every_model_paired_with_an_unconverged_relu():
    trained = pd.DataFrame({"variant": ["relu", "relu", "gelu", "gelu", "topk"], "seed": [0, 1, 0, 1, 0],
                            "p": [0.1] * 5, "converged": [True, False, True, True, False]})
    kept, dropped = variants.converged_pairs(trained)
    assert list(zip(kept["variant"], kept["seed"])) == [("relu", 0), ("gelu", 0)]
    assert dict(zip(zip(dropped["variant"], dropped["seed"]), dropped["reason"])) == {
        ("relu", 1): "did not converge within the step cap",
        ("gelu", 1): "its ReLU partner did not converge",
        ("topk", 0): "did not converge within the step cap"}
