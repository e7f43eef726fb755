"""toysup.fits.power_law: exact on a power law, the standard error of a least-squares slope."""
import numpy as np
import pytest

from toysup import fits


def test_power_law_recovers_an_exact_power_law():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    fit = fits.power_law(x, 3.0 * x ** -0.5)
    assert fit.slope == pytest.approx(-0.5, abs=1e-12)
    assert np.exp(fit.intercept) == pytest.approx(3.0, rel=1e-12)
    assert fit.slope_se == pytest.approx(0.0, abs=1e-12)
    assert fit(32.0) == pytest.approx(3.0 * 32 ** -0.5, rel=1e-12)
    assert fit.n_points == 5


def test_slope_standard_error_matches_its_sampling_spread():
    # y = x^1 times log-normal noise of sd 0.1: the stated SE must match the spread over many fits.
    rng = np.random.default_rng(0)
    x = np.geomspace(1, 100, 8)
    fits_ = [fits.power_law(x, x * np.exp(0.1 * rng.standard_normal(8))) for _ in range(2000)]
    slopes = np.array([f.slope for f in fits_])
    se = np.mean([f.slope_se for f in fits_])
    assert slopes.mean() == pytest.approx(1.0, abs=3 * slopes.std() / np.sqrt(len(slopes)))
    assert se == pytest.approx(slopes.std(), rel=0.1)


def test_two_points_have_no_standard_error():
    fit = fits.power_law([1, 4], [2, 8])
    assert fit.slope == pytest.approx(1.0) and np.isnan(fit.slope_se)


@pytest.mark.parametrize(("x", "y", "match"), [([1.0], [1.0], "length >= 2"),
                                               ([1, 2, 3], [1, 2], "same length"),
                                               ([1, 2], [1, 0], "positive")])
def test_bad_input_is_refused(x, y, match):
    with pytest.raises(ValueError, match=match):
        fits.power_law(x, y)


def test_bootstrap_interval_is_exact_on_a_noiseless_power_law():
    x = np.tile([1.0, 2.0, 4.0, 8.0], 3)
    iv = fits.slope_interval(x, 2.0 * x ** 0.7, np.repeat([0, 1, 2], 4), n_boot=200)
    assert iv.estimate == pytest.approx(0.7) and iv.low == pytest.approx(0.7) and iv.high == pytest.approx(0.7)
    assert iv.contains(0.7) and not iv.contains(0.6)


def test_bootstrap_interval_covers_the_true_slope_about_as_often_as_its_level():
    # 3 groups x 5 points, each group with its own offset (a network seed) and per-point noise
    rng = np.random.default_rng(1)
    x = np.tile(np.geomspace(1, 16, 5), 3)
    groups = np.repeat([0, 1, 2], 5)
    hits = 0
    n_data = 150
    for k in range(n_data):
        y = x ** 0.5 * np.exp(0.05 * rng.standard_normal(15) + 0.1 * rng.standard_normal(3)[groups])
        hits += fits.slope_interval(x, y, groups, n_boot=300, seed=k).contains(0.5)
    # nominal 95 %; a percentile bootstrap on 3 groups under-covers somewhat: accept >= 80 %
    assert hits / n_data >= 0.80, hits / n_data


@pytest.mark.parametrize(("kwargs", "match"), [({"level": 1.5}, "level"), ({"n_boot": 5}, "n_boot")])
def test_bootstrap_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fits.slope_interval([1, 2, 3], [1, 2, 3], [0, 0, 0], **kwargs)


def test_slope_interval_needs_matching_shapes():
    with pytest.raises(ValueError, match="same shape"):
        fits.slope_interval([1, 2, 3], [1, 2, 3], [0, 0])


def test_slope_difference_interval_separates_two_power_laws_and_not_one():
    rng = np.random.default_rng(2)
    x = np.tile(np.geomspace(1, 64, 7), 3)
    groups = np.repeat([0, 1, 2], 7)
    noise = lambda: np.exp(0.02 * rng.standard_normal(21))   # noqa: E731
    a, b = x ** -0.5 * noise(), 3 * x ** -0.4 * noise()
    gap = fits.slope_difference_interval(x, a, b, groups, n_boot=500)
    assert gap.estimate == pytest.approx(0.1, abs=0.02) and gap.low > 0
    same = fits.slope_difference_interval(x, a, 2 * a, groups, n_boot=500)
    assert same.low == pytest.approx(0.0, abs=1e-9) and same.high == pytest.approx(0.0, abs=1e-9)
