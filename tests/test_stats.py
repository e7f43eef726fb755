import pytest
import torch

from toysup.persian_rug import projectors, stats


def _pairs(n: int, a: float = 1.0) -> torch.Tensor:
    """Antipodal pairs: W = a·[[1, −1], [−1, 1]] blocks (spec R14), one instance."""
    block = a * torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    return torch.block_diag(*[block] * (n // 2))[None]


def test_interference_moments_match_their_definitions():
    W = torch.tensor([[[1.0, 0.2, -0.4], [0.1, 1.0, 0.3], [0.0, -0.5, 0.9]]])
    p = torch.tensor([0.1])
    v = 0.1 / 3 - 0.01 / 4
    torch.testing.assert_close(stats.mean_interference(W, p), torch.tensor([[-0.01, 0.02, -0.025]]))
    torch.testing.assert_close(stats.interference_variance(W, p),
                               v * torch.tensor([[0.2, 0.1, 0.25]]))
    b = torch.tensor([[-0.3, -0.2, -0.1]])
    torch.testing.assert_close(stats.effective_bias(W, b, p), torch.tensor([[-0.31, -0.18, -0.125]]))


def test_antipodal_pairs_are_all_paired_and_identity_has_none():
    assert stats.paired_fraction(_pairs(8)).item() == 1.0
    assert stats.paired_fraction(torch.eye(8)[None]).item() == 0.0


def test_dead_fraction_counts_small_diagonal_entries():
    W = torch.diag(torch.tensor([1.0, 1.1, 0.05, 0.9, 0.0]))[None]
    assert stats.dead_fraction(W).item() == pytest.approx(0.4)


def test_summary_of_a_projector_reports_its_rank_and_diagonal():
    q, _ = torch.linalg.qr(torch.randn(64, 16, generator=torch.Generator().manual_seed(0)))
    W = (q @ q.T)[None] * 4.0                      # (a/r)·Π with r = 1/4
    summary = stats.weight_summary(W, -0.1 * torch.ones(1, 64), torch.tensor([0.05]))
    assert summary.loc[0, "rank"] == 16
    assert summary.loc[0, "diag_mean"] == pytest.approx(1.0, abs=1e-5)


def test_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        stats.off_diagonal(torch.zeros(3, 4))


# --- chapter 2 statistics -------------------------------------------------------------------------

def _gaussian_W(k: int, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.eye(n).expand(k, n, n) + torch.randn(k, n, n, generator=gen) / n ** 0.5


def test_row_spreads_are_unbiased_variances_over_rows():
    W = torch.diag(torch.tensor([1.0, 2.0, 3.0]))[None]
    b = torch.tensor([[0.0, 1.0, 5.0]])
    p = torch.tensor([0.1])
    assert stats.delta_diag(W).item() == pytest.approx(1.0)
    assert stats.delta_bias(b).item() == pytest.approx(torch.tensor([0.0, 1.0, 5.0]).var().item())
    assert stats.delta_effective_bias(W, b, p).item() == pytest.approx(stats.delta_bias(b).item())
    W2 = _gaussian_W(2, 16)
    p2 = torch.tensor([0.05, 0.3])
    torch.testing.assert_close(stats.delta_var_nu(W2, p2), stats.interference_variance(W2, p2).var(dim=1))
    torch.testing.assert_close(stats.delta_mean_nu(W2, p2), stats.mean_interference(W2, p2).var(dim=1))


def test_code_variants_include_the_diagonal_and_chi_meanvar_uses_a_mean():
    W = _gaussian_W(1, 16)
    p = torch.tensor([0.2])
    v = 0.2 / 3 - 0.04 / 4
    torch.testing.assert_close(stats.chi_varvar(W, p), (v * (W[0] ** 2).sum(1)).var()[None])
    torch.testing.assert_close(stats.chi_meanvar(W, p), (0.1 * W[0].sum(1) / 16).var()[None])


def test_lyapunov_ratio_of_equal_entries_is_their_size():
    W = torch.full((1, 5, 5), 0.3)
    torch.testing.assert_close(stats.lyapunov_ratio_rows(W), torch.full((1, 5), 0.3))
    torch.testing.assert_close(stats.lyapunov_ratio(W), torch.tensor([0.3]))


def test_excess_kurtosis_matches_a_sampled_estimate():
    W = torch.tensor([[[1.0, 0.5, -0.3, 0.2], [0.1, 1.0, 0.4, -0.6], [0.2, 0.2, 1.0, 0.2],
                       [0.9, -0.1, 0.0, 1.0]]])
    p = torch.tensor([0.1])
    nu = stats.sample_interference(W.double(), p, torch.arange(4), 400_000,
                                   torch.Generator().manual_seed(0))[0]
    c = nu - nu.mean(0)
    sampled = (c ** 4).mean(0) / (c ** 2).mean(0) ** 2 - 3
    analytic = stats.nu_excess_kurtosis(W.double(), p)[0]
    torch.testing.assert_close(sampled, analytic, rtol=0.08, atol=0.05)


def test_ks_accepts_dense_interference_and_rejects_a_single_sparse_term():
    gen = torch.Generator().manual_seed(0)
    dense = _gaussian_W(1, 256)
    median, reject = stats.ks_normality(dense, torch.tensor([0.5]), generator=gen, n_rows=100)
    assert median.item() > 0.2 and reject.item() < 0.15
    single = torch.eye(256)[None] + torch.roll(torch.eye(256), 1, dims=1)[None]
    median, reject = stats.ks_normality(single, torch.tensor([0.05]), generator=gen, n_rows=100)
    assert median.item() < 1e-6 and reject.item() == 1.0
    with pytest.raises(ValueError, match="n_samples"):
        stats.ks_normality(dense, torch.tensor([0.5]), generator=gen, n_samples=3)


def test_symmetry_statistics_of_a_projector():
    n, m = 64, 16
    q = projectors.orthonormal_columns(n, m, 1, torch.Generator().manual_seed(1), kind="hadamard").float()
    W = (q @ q.transpose(1, 2)) * (n / m)        # Eq. (7) with a = 1: constant diagonal
    table = stats.symmetry_statistics(W, -0.3 * torch.ones(1, n), torch.tensor([0.1]), d_hidden=m,
                                      generator=torch.Generator().manual_seed(0), ks_rows=20)
    assert table.loc[0, "bound_ratio"] == pytest.approx(1.0, rel=1e-3)
    assert table.loc[0, "a"] == pytest.approx(1.0, rel=1e-4)
    a, eff_bias, sigma = stats.macro_statistics(W, -0.3 * torch.ones(1, n), torch.tensor([0.1]))
    assert (table.loc[0, "eff_bias"], table.loc[0, "sigma"]) == (eff_bias.item(), sigma.item())
    assert {"delta_diag", "chi_varvar", "chi_meanvar", "lyapunov", "ks_reject_fraction",
            "nu_excess_kurtosis", "paired", "dead"} <= set(table.columns)
