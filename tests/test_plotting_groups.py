"""toysup.plotting.grouped_errorbars and the carpet palette of the Persian-rug pictures."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from toysup import plotting


def test_one_series_per_group_in_first_appearance_order():
    frame = pd.DataFrame({"n": [8, 8, 2, 2], "x": [1, 2, 1, 2], "y": [1.0, 2.0, 3.0, 4.0],
                          "lo": [0.5, 1.5, 2.5, 3.5], "hi": [2.0, 3.0, 4.0, 5.0]})
    fig, ax = plt.subplots()
    plotting.grouped_errorbars(ax, frame, "n", "x", "y", span=("lo", "hi"), label="n = {n}", markers="o")
    handles, labels = ax.get_legend_handles_labels()
    assert labels == ["n = 8", "n = 2"]
    assert [c.get_color() for c in ax.containers[0].lines[:1]] == [plotting.CYCLE[0]]
    np.testing.assert_array_equal(ax.containers[1].lines[0].get_ydata(), [3.0, 4.0])
    plt.close(fig)


def test_err_and_span_are_exclusive():
    fig, ax = plt.subplots()
    frame = pd.DataFrame({"g": [1], "x": [1], "y": [1], "e": [0.1]})
    with pytest.raises(ValueError, match="err"):
        plotting.grouped_errorbars(ax, frame, "g", "x", "y", err="e", span=("e", "e"))
    plt.close(fig)


def test_carpet_palette_is_diverging_around_cream():
    assert plotting.CARPET.name == "carpet"
    low, mid, high = plotting.CARPET(0.0), plotting.CARPET(0.5), plotting.CARPET(1.0)
    assert sum(mid[:3]) > sum(low[:3]) and sum(mid[:3]) > sum(high[:3])


def test_a_fitted_line_is_labelled_fit_not_theory():
    fig, ax = plt.subplots()
    plotting.measured_vs_theory(ax, [1, 2], [1.0, 0.5], [1.0, 0.5], label="Δdiag", line="fit")
    plotting.measured_vs_theory(ax, [1, 2], [1.0, 0.5], [1.0, 0.5], label="bias")
    labels = ax.get_legend_handles_labels()[1]
    plt.close(fig)
    assert sorted(labels) == sorted(["Δdiag, fit", "bias, theory", "Δdiag, measured", "bias, measured"])
