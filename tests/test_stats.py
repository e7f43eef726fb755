import pytest
import torch

from toysup import stats


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
