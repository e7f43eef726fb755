import math

import numpy as np
import pytest

from toysup.persian_rug import mmse, theory


v = theory.feature_variance


@pytest.mark.parametrize("p", [1e-4, 0.01, 0.1, 0.5, 1.0])
def test_mmse_tends_to_the_variance_for_large_noise(p):
    assert mmse.mmse(p, 1e3) == pytest.approx(v(p), rel=1e-4)


@pytest.mark.parametrize("p", [1e-3, 0.05, 0.5])
def test_mmse_is_p_s_squared_for_small_noise(p):
    # active features keep their Gaussian noise; confusions with x = 0 are O(p s³ log)
    ratios = [mmse.mmse(p, s) / (p * s * s) for s in (1e-2, 1e-3, 1e-4)]
    assert ratios[-1] == pytest.approx(1, rel=0.01)
    assert abs(ratios[0] - 1) > abs(ratios[1] - 1) > abs(ratios[2] - 1)
    assert mmse.mmse(p, 1e-6) < 1e-10


def test_mmse_increases_with_noise_and_stays_below_the_variance():
    p = 0.03
    values = [mmse.mmse(p, s) for s in np.geomspace(1e-3, 30, 25)]
    assert all(b > a for a, b in zip(values, values[1:]))
    assert max(values) < v(p)


def test_quadrature_has_converged():
    for p, s in [(1e-5, 0.0055), (0.1, 0.5)]:
        assert mmse.mmse(p, s, points_per_s=200) == pytest.approx(mmse.mmse(p, s), rel=1e-6)


# spec R11 table: (p, r, JumpReLU, MMSE); r = 0.1 rows and r = κ p ln(1/p) rows (as L / (p/3))
FIXED_R = [(1e-1, 2.655e-2, 2.577e-2), (1e-2, 1.013e-3, 8.858e-4), (1e-3, 7.789e-6, 7.018e-6),
           (1e-4, 5.390e-8, 5.096e-8), (1e-5, 4.068e-10, 3.964e-10)]
ALONG_KAPPA = {0.5: [0.868, 0.914, 0.937, 0.951], 1.0: [0.616, 0.637, 0.637, 0.633],
               3.0: [0.170, 0.172, 0.161, 0.152]}


@pytest.mark.parametrize(("p", "jump", "bound"), FIXED_R)
def test_spec_table_at_fixed_r(p, jump, bound):
    s = theory.min_interference_std(p, 0.1)
    assert mmse.mmse(p, s) == pytest.approx(bound, rel=0.02)
    assert mmse.optimal_jumprelu(p, s).loss == pytest.approx(jump, rel=0.02)


@pytest.mark.parametrize("kappa", sorted(ALONG_KAPPA))
def test_spec_table_along_r_proportional_to_p_log_p(kappa):
    for p, expected in zip([1e-2, 1e-3, 1e-4, 1e-5], ALONG_KAPPA[kappa]):
        r = kappa * p * math.log(1 / p)
        assert mmse.mmse(p, theory.min_interference_std(p, r)) / (p / 3) == pytest.approx(expected, rel=0.02)


def test_jumprelu_limits_and_bound():
    p, s = 0.05, 0.2
    assert mmse.jumprelu_loss(0.3, 0.0, p, s) == pytest.approx(p / 3, rel=1e-7)     # outputs 0
    assert mmse.jumprelu_loss(-50.0, 1.0, p, s) == pytest.approx(s * s, rel=1e-4)    # y itself
    best = mmse.optimal_jumprelu(p, s)
    assert best.loss >= mmse.mmse(p, s)
    assert best.loss <= mmse.jumprelu_loss(best.threshold * 1.1, best.scale, p, s)


def test_row_bound_interpolates_and_treats_dead_rows_as_unread():
    p = 0.05
    diag = np.array([1.2, 0.9, 1.0, -0.1, 0.0])
    sigma = np.array([0.25, 0.2, 0.6, 0.3, 0.3])
    bound = mmse.row_bound(p, diag, sigma)
    for i in range(3):
        assert bound[i] == pytest.approx(mmse.mmse(p, sigma[i] / diag[i]), rel=1e-4)
    assert bound[3] == bound[4] == pytest.approx(v(p))


@pytest.mark.parametrize(("call", "match"), [
    (lambda: mmse.mmse(0.0, 0.1), "feature_prob"),
    (lambda: mmse.mmse(0.1, 0.0), "noise_std"),
    (lambda: mmse.optimal_jumprelu(0.1, -1.0), "noise_std"),
    (lambda: mmse.row_bound(1.5, np.ones(3), np.ones(3)), "feature_prob"),
    (lambda: mmse.row_bound(0.1, np.ones(3), np.ones(2)), "same shape"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
