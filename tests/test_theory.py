"""Analytic large-n loss of the Persian-rug model (toysup.theory) against the spec's reference
values (persian_rug.md §4 and R10), exact limits, Monte Carlo of the scalar channel, and geometry."""
import math

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard

from toysup.persian_rug import projectors, theory

R_COLS = [0.044001, 0.086001, 0.128001, 0.254001, 0.506, 0.8]
# spec §4 table: p -> (L*, a*, b*) at the r values above
REFERENCE = {
    0.002001: [(1.173e-4, 1.570, -0.525), (5.338e-5, 1.388, -0.320), (3.298e-5, 1.303, -0.239),
               (1.349e-5, 1.191, -0.142), (4.297e-6, 1.106, -0.075), (1.069e-6, 1.052, -0.036)],
    0.01: [(2.179e-3, 1.310, -0.794), (1.181e-3, 1.529, -0.651), (7.418e-4, 1.494, -0.509),
           (2.975e-4, 1.347, -0.298), (9.145e-5, 1.197, -0.151), (2.212e-5, 1.097, -0.069)],
    0.044001: [(1.317e-2, 0.172, -0.070), (1.117e-2, 0.638, -0.348), (8.992e-3, 0.972, -0.471),
               (4.581e-3, 1.299, -0.443), (1.471e-3, 1.274, -0.257), (3.479e-4, 1.150, -0.117)],
    0.086001: [(2.544e-2, 0.072, 0.024), (2.339e-2, 0.258, -0.072), (2.076e-2, 0.508, -0.200),
               (1.314e-2, 1.012, -0.357), (4.830e-3, 1.233, -0.280), (1.167e-3, 1.163, -0.137)],
    0.128001: [(3.676e-2, 0.055, 0.054), (3.450e-2, 0.161, 0.012), (3.168e-2, 0.320, -0.062),
               (2.237e-2, 0.785, -0.242), (9.285e-3, 1.152, -0.261), (2.329e-3, 1.157, -0.143)],
    0.254001: [(6.550e-2, 0.046, 0.120), (6.238e-2, 0.101, 0.107), (5.893e-2, 0.173, 0.084),
               (4.713e-2, 0.454, -0.020), (2.447e-2, 0.915, -0.148), (6.973e-3, 1.102, -0.126)],
    0.506: [(1.001e-1, 0.044, 0.242), (9.564e-2, 0.087, 0.231), (9.115e-2, 0.133, 0.217),
            (7.701e-2, 0.294, 0.165), (4.733e-2, 0.653, 0.040), (1.625e-2, 0.971, -0.047)],
    0.8: [(1.020e-1, 0.044, 0.382), (9.749e-2, 0.086, 0.366), (9.301e-2, 0.128, 0.349),
          (7.949e-2, 0.258, 0.296), (5.189e-2, 0.540, 0.177), (1.999e-2, 0.861, 0.042)],
}
EXTRA = [((0.045, 0.25), 4.856e-3), ((0.1, 0.25), 1.645e-2), ((0.1, 0.5), 6.376e-3),
         ((0.01, 0.25), 3.04e-4), ((0.05, 0.1), 1.222e-2), ((0.01, 0.1), 9.963e-4),
         ((0.001, 0.1), 1.155e-5)]
R10 = theory.SPEC_R10   # spec R10 table: (p, r) -> (L*, L*/(p s^2), beta*, a*)


def test_spec_reference_table_within_half_percent():
    P, R = np.meshgrid(list(REFERENCE), R_COLS, indexing="ij")
    expected = np.array([[c[0] for c in row] for row in REFERENCE.values()])
    a_ref = np.array([[c[1] for c in row] for row in REFERENCE.values()])
    b_ref = np.array([[c[2] for c in row] for row in REFERENCE.values()])
    opt = theory.optimal_symmetric_loss(P, R)
    rel = np.abs(opt.loss / expected - 1)
    assert rel.max() <= 0.005, f"worst relative error {rel.max():.4f} at {np.unravel_index(rel.argmax(), rel.shape)}"
    # a*, b* are printed with 3 decimals in the spec: allow 2 units of the last digit
    assert np.abs(opt.a - a_ref).max() <= 2e-3
    assert np.abs(opt.b - b_ref).max() <= 2e-3


@pytest.mark.parametrize(("point", "expected"), EXTRA)
def test_spec_additional_points(point, expected):
    loss = theory.optimal_symmetric_loss(*point).loss
    assert abs(loss / expected - 1) <= 0.005, f"L*{point} = {loss:.4e}, expected {expected:.4e}"


def test_high_sparsity_table_within_one_percent():
    points = list(R10)
    p = np.array([q for q, _ in points])
    r = np.array([q for _, q in points])
    opt = theory.optimal_symmetric_loss(p, r)
    s2 = theory.min_interference_std(p, r) ** 2
    measured = np.stack([opt.loss, opt.loss / (p * s2), opt.beta, opt.a], axis=1)
    expected = np.array(list(R10.values()))
    rel = np.abs(measured / expected - 1)
    assert rel.max() <= 0.01, f"worst relative error {rel.max():.4f} at {points[rel.max(1).argmax()]}"


def test_high_sparsity_asymptote_and_explicit_bound():
    table = theory.high_sparsity_table([1e-3, 1e-4, 1e-5, 1e-6, 1e-8], [0.1, 0.3])
    assert table["ratio_to_asymptote"].between(0.85, 1.15).all()
    assert (table["upper_bound"] >= table["loss"]).all()
    # spec R10: explicit bound / its asymptote = 0.58, 0.85, 0.95, 0.99 at p = 1e-2, 1e-3, 1e-4, 1e-6
    bound = theory.high_sparsity_upper_bound(np.array([1e-2, 1e-3, 1e-4, 1e-6]), 0.1)
    ratio = bound / theory.high_sparsity_upper_bound_asymptote(np.array([1e-2, 1e-3, 1e-4, 1e-6]), 0.1)
    np.testing.assert_allclose(ratio, [0.58, 0.85, 0.95, 0.99], atol=0.006)


def test_feature_variance_is_plain_arithmetic_on_floats_arrays_and_tensors():
    p = [0.02, 0.1, 0.4, 1.0]
    expected = [q / 3 - q * q / 4 for q in p]
    assert [theory.feature_variance(q) for q in p] == expected
    assert isinstance(theory.feature_variance(0.1), float)
    array = theory.feature_variance(np.array(p))
    assert isinstance(array, np.ndarray) and array.tolist() == expected
    for dtype in (torch.float32, torch.float64):
        t = torch.tensor(p, dtype=dtype)
        v = theory.feature_variance(t)
        assert v.dtype == dtype and torch.equal(v, t / 3 - t * t / 4)
    for bad in (0.0, np.array([0.5, 1.5]), torch.tensor([np.nan])):
        with pytest.raises(ValueError, match="feature_prob"):
            theory.feature_variance(bad)


def test_sanity_values_and_zero_noise_limit():
    for p in (1e-3, 0.05, 0.5, 1.0):
        assert theory.symmetric_loss(0.0, p / 2, 0.0, p) == pytest.approx(theory.feature_variance(p), rel=1e-12)
        assert theory.symmetric_loss(1.0, -1e-9, 1e-12, p) < 1e-17
    # sigma = 0, a = 1, b = -0.2: active u < 0.2 cost u^2, u > 0.2 cost 0.2^2
    p = 0.3
    exact = p * (0.2 ** 3 / 3 + 0.8 * 0.04)
    assert theory.symmetric_loss(1.0, -0.2, 0.0, p) == pytest.approx(exact, rel=1e-12)
    assert theory.symmetric_loss(1.0, -0.2, 1e-9, p) == pytest.approx(exact, rel=1e-7)


def test_linear_solution_is_inside_the_ansatz():
    p, r = 0.3, 0.25
    a = r
    loss = theory.symmetric_loss(a, p / 2 * (1 - a) + 50 * a * theory.min_interference_std(p, r),
                                 a * theory.min_interference_std(p, r), p)
    # a huge bias keeps the ReLU open: the affine loss v(1-r) plus the squared mean shift
    shift = 50 * a * theory.min_interference_std(p, r)
    assert loss == pytest.approx(theory.linear_loss(p, r) + shift ** 2, rel=1e-10)
    assert theory.linear_loss(0.8, 0.5) == pytest.approx(0.0533, abs=1e-4)       # spec R12
    assert theory.linear_loss_authors_code(0.8, 8192, 4096) == pytest.approx(0.1333, abs=1e-4)
    assert theory.linear_loss_authors_code(0.3, 10, 4) == pytest.approx(0.1 * 5 / 10)


def test_gaussian_relu_moments_match_quadrature():
    z = np.linspace(-12, 12, 200_001)
    weight = np.exp(-z * z / 2) / math.sqrt(2 * math.pi) * (z[1] - z[0])
    for m, sigma in [(0.3, 0.2), (-0.5, 0.1), (0.0, 1.0), (2.0, 0.5)]:
        relu = np.maximum(m + sigma * z, 0)
        g1, g2 = theory.gaussian_relu_moments(m, sigma)
        assert g1 == pytest.approx(np.sum(weight * relu), rel=1e-8)
        assert g2 == pytest.approx(np.sum(weight * relu ** 2), rel=1e-8)


@pytest.mark.parametrize("case", range(5))
def test_eq5_matches_monte_carlo_of_the_scalar_channel(case):
    rng = np.random.default_rng(case)
    a, b = rng.uniform(0.3, 1.6), rng.uniform(-0.5, 0.3)
    sigma, p = 10 ** rng.uniform(-2, -0.3), 10 ** rng.uniform(-1.5, -0.1)
    gen = torch.Generator().manual_seed(case)
    mc, se = theory.scalar_channel_loss_mc(a, b, sigma, p, 1_000_000, gen)
    exact = theory.symmetric_loss(a, b, sigma, p)
    assert abs(mc - exact) <= 3 * se, f"MC {mc:.5e} ± {se:.1e} vs Eq.(5) {exact:.5e} at {a, b, sigma, p}"


def test_scalar_channel_monte_carlo_without_noise_has_its_closed_forms():
    gen = torch.Generator().manual_seed(0)
    p = 0.1
    mean, se = theory.scalar_channel_loss_mc(0.0, p / 2, 0.0, p, n_samples=200_000, generator=gen)
    assert abs(mean - theory.feature_variance(p)) < 4 * se
    mean, _ = theory.scalar_channel_loss_mc(1.0, 0.0, 0.0, p, n_samples=1000, generator=gen)
    assert mean == 0.0


def test_dloss_dsigma_matches_finite_difference_and_is_positive_at_the_optimum():
    a, b, sigma, p = np.array([1.2, 0.4]), np.array([-0.3, 0.1]), np.array([0.1, 0.5]), np.array([0.05, 0.3])
    h = 1e-6
    fd = (theory.symmetric_loss(a, b, sigma + h, p) - theory.symmetric_loss(a, b, sigma - h, p)) / (2 * h)
    np.testing.assert_allclose(theory.dloss_dsigma(a, b, sigma, p), fd, rtol=1e-6)
    g = np.linspace(0.002001, 0.8, 8)
    P, R = np.meshgrid(g, g, indexing="ij")
    opt = theory.optimal_symmetric_loss(P, R)
    assert (theory.dloss_dsigma(opt.a, opt.b, opt.sigma, P) > 0).all()


def test_paper_grid_runs_and_is_consistent():
    g = np.linspace(0.002001, 0.8, 20)
    P, R = np.meshgrid(g, g, indexing="ij")
    opt = theory.optimal_symmetric_loss(P, R)
    assert opt.loss.shape == (20, 20) and np.isfinite(opt.loss).all()
    assert (opt.loss <= theory.linear_loss(P, R) * (1 + 1e-12)).all()
    assert (opt.loss[:, 1:] < theory.linear_loss(P, R)[:, 1:]).all()     # r >= 0.05: strictly better
    assert (np.diff(opt.loss, axis=1) < 0).all(), "L* must fall as r grows"
    # the general-noise optimiser agrees, and more noise always costs
    more = theory.optimal_loss_at_noise(P, 1.1 * theory.min_interference_std(P, R))
    assert (more.loss > opt.loss).all()


def test_scalar_in_scalar_out_and_r_equal_one():
    opt = theory.optimal_symmetric_loss(0.045, 0.25)
    assert isinstance(opt.loss, float) and isinstance(opt.a, float)
    assert f"{opt.loss:.3e}" == "4.856e-03"
    one = theory.optimal_symmetric_loss(0.1, 1.0)
    assert one.loss == 0.0 and one.a == 1.0


def _equalise(W: np.ndarray, a: float = 1.0) -> np.ndarray:
    """Rescale rows so that every diagonal entry is a: rank is unchanged."""
    return W * (a / np.diagonal(W, axis1=-2, axis2=-1))[..., :, None]


def test_rank_bound_on_random_low_rank_matrices():
    rng = np.random.default_rng(0)
    n, m, k = 64, 16, 20
    W = rng.standard_normal((k, n, m)) @ rng.standard_normal((k, m, n))
    ratio = theory.rank_bound_ratio(_equalise(W, 1.3), m)
    assert ratio.shape == (k,) and (ratio >= 1).all()


def test_rank_bound_is_tight_for_projectors():
    rng = np.random.default_rng(1)
    n, m, a = 256, 64, 1.3
    # Hadamard rows: Pi_ii = r exactly, W = (a/r) Pi saturates the bound
    H = hadamard(n).astype(float)
    rows = H[rng.choice(n, m, replace=False)]
    Pi = rows.T @ rows / n
    assert theory.rank_bound_ratio(a * (n / m) * Pi, m) == pytest.approx(1.0, abs=1e-9)
    # random orthonormal columns: Pi_ii = r +- O(n^-1/2); after equalising the diagonal ratio >= 1, -> 1
    excess = []
    for size in (64, 256, 1024):
        U, _ = np.linalg.qr(rng.standard_normal((size, size // 4)))
        ratio = theory.rank_bound_ratio(torch.from_numpy(_equalise(U @ U.T, a)), size // 4)
        assert ratio >= 1
        excess.append(ratio - 1)
    assert excess[0] > excess[1] > excess[2] and excess[2] < 0.01


@pytest.mark.parametrize(("call", "name"), [
    (lambda: theory.feature_variance(0.0), "feature_prob"),
    (lambda: theory.zero_output_loss(1.5), "feature_prob"),
    (lambda: theory.linear_loss(0.1, -0.2), "ratio"),
    (lambda: theory.min_interference_std(np.nan, 0.5), "feature_prob"),
    (lambda: theory.optimal_symmetric_loss(0.1, [0.5, 1.2]), "ratio"),
    (lambda: theory.optimal_symmetric_loss(0.0, 0.5), "feature_prob"),
    (lambda: theory.symmetric_loss(1.0, -0.1, -0.2, 0.1), "sigma"),
    (lambda: theory.symmetric_loss(-1.0, -0.1, 0.2, 0.1), "a"),
    (lambda: theory.dloss_dsigma(1.0, -0.1, 0.0, 0.1), "sigma"),
    (lambda: theory.high_sparsity_loss(0.01, 0.0), "ratio"),
    (lambda: theory.linear_loss_authors_code(0.1, 10, 11), "d_hidden"),
    (lambda: theory.rank_bound_ratio(np.eye(4), 4), "d_hidden"),
    (lambda: theory.rank_bound_ratio(np.ones((3, 4)), 2), "W_eff"),
    (lambda: theory.crossover_ratio(0.01, 0.0), "kappa"),
    (lambda: theory.crossover_ratio(1.0, 1.0), "feature_prob"),
    (lambda: theory.rank_bound_experiment([64], 1.5, 1, a=1.0, generator=torch.Generator()), "ratio"),
    (lambda: theory.scalar_channel_loss_mc(1.0, 0.0, 0.1, 0.1, 1, torch.Generator()), "n_samples"),
])
def test_errors_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_rank_bound_experiment_families():
    table = theory.rank_bound_experiment([64, 128], 0.25, 3, a=1.3, generator=torch.Generator().manual_seed(0))
    assert len(table) == 8 and (table["ratio_min"] >= 1 - 1e-12).all()
    hadamard_rows = table[table["family"] == "Hadamard projector"]
    np.testing.assert_allclose(hadamard_rows[["ratio_min", "ratio_max"]], 1.0, atol=1e-12)


def test_rank_bound_ratio_of_a_projector_family_from_projectors():
    Pi = projectors.random_projector(64, 16, 3, torch.Generator().manual_seed(0), kind="hadamard")
    np.testing.assert_allclose(theory.rank_bound_ratio(1.3 * 4 * Pi, 16), 1.0, atol=1e-12)
    ratio = theory.rank_bound_ratio(Pi.float(), 16)         # float32 in, float64 out
    assert ratio.dtype == np.float64 and ratio.shape == (3,)


def test_noise_elasticity_matches_a_finite_difference_of_the_optimum():
    p, r = np.array([0.01, 0.1, 0.5]), np.array([0.25, 0.1, 0.5])
    opt = theory.optimal_symmetric_loss(p, r)
    s = theory.min_interference_std(p, r)
    up = theory.optimal_loss_at_noise(p, s * 1.001).loss
    down = theory.optimal_loss_at_noise(p, s / 1.001).loss
    np.testing.assert_allclose(theory.noise_elasticity(p, opt), np.log(up / down) / (2 * np.log(1.001)), rtol=1e-4)


def test_eq5_vs_monte_carlo_table_and_authors_formula_vectorised():
    table = theory.eq5_vs_monte_carlo(3, 200_000, torch.Generator().manual_seed(3))
    assert list(table.columns) == ["a", "b", "sigma", "p", "eq5", "mc", "stderr", "z"]
    assert (table["z"].abs() <= 4).all()
    values = theory.linear_loss_authors_code(0.3, 100, np.array([1, 50, 99, 100]))
    np.testing.assert_allclose(values, 0.1 * np.array([98, 49, 0, 0]) / 100)


def test_loss_vs_noise_starts_at_the_optimum_and_rises_with_the_noise():
    p, r = np.array([0.01, 0.1]), np.array([0.1, 0.5])
    opt = theory.optimal_symmetric_loss(p, r)
    table = theory.loss_vs_noise(p, r, opt, [1.1, 1.5])
    assert table.shape == (2, 3)
    np.testing.assert_array_equal(table[:, 0], opt.loss)
    s = theory.min_interference_std(p, r)
    np.testing.assert_allclose(table[:, 2], theory.optimal_loss_at_noise(p, 1.5 * s).loss, rtol=1e-12)
    assert (np.diff(table, axis=-1) > 0).all()


def test_reference_errors_against_the_spec_points():
    table = theory.reference_errors(dict(EXTRA))
    assert list(table.columns) == ["p", "r", "measured", "expected", "rel_err"]
    assert table["rel_err"].abs().max() <= 0.005
    np.testing.assert_allclose(table["measured"] / table["expected"] - 1, table["rel_err"])


def test_ratio_to_linear_keeps_r_at_least_min_ratio_and_is_one_for_the_linear_loss():
    p, r = np.array([[0.01], [0.1]]), np.array([0.02, 0.05, 0.5])
    ratio = theory.ratio_to_linear(p, r, theory.linear_loss(p, r), min_ratio=0.05)
    np.testing.assert_allclose(ratio, np.ones(4))          # two p times the two r >= 0.05
    below = theory.ratio_to_linear(p, r, theory.optimal_symmetric_loss(p, r).loss)
    assert below.shape == (4,) and (below < 1).all()


def test_crossover_loss_drops_past_kappa_one():
    # spec R1 (d): L*/(p/3) < 0.8 at r = p ln(1/p), > 0.85 at half of it, for small p
    p = np.array([0.01, 1e-4])
    assert (theory.crossover_loss(p, 1.0) < 0.8).all()
    assert (theory.crossover_loss(p, 0.5) > 0.85).all()


def test_rank_bound_summary_reads_the_experiment_table():
    table = theory.rank_bound_experiment([64, 128], 0.25, 3, a=1.3, generator=torch.Generator().manual_seed(1))
    summary = theory.rank_bound_summary(table)
    assert summary["lowest"] >= 1 - 1e-12
    assert summary["hadamard_err"] < 1e-9
    assert list(summary["excess"].index) == [64, 128] and (summary["excess"] > 0).all()


def test_high_sparsity_errors_and_slopes():
    table = theory.high_sparsity_table([1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8], [0.1, 0.3])
    assert theory.high_sparsity_errors(table).shape == (len(theory.SPEC_R10), 4)
    assert theory.high_sparsity_errors(table).max() <= 0.01
    slopes = theory.high_sparsity_slopes(table)
    assert slopes["r"].tolist() == [0.1, 0.3]
    # the asymptote p^2 ln(1/p) has log-log slope 2 - 1/ln(1/p): just below 2 at p <= 1e-4
    assert slopes["slope of asymptote"].between(1.9, 2.0).all()
    assert (slopes["slope of L* (p <= 1e-4)"] - slopes["slope of asymptote"]).abs().max() <= 0.03
    assert (slopes["slope vs ln(1/p) (p <= 1e-6)"] * 6).between(0.85, 1.15).all()
