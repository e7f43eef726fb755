"""toysup.persian_rug.projectors: rank-m orthogonal projectors (Eq. 7) of both kinds and the
Sylvester-Hadamard rows they are built from."""
import pytest
import torch
from scipy.linalg import hadamard

from toysup.persian_rug import projectors


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_hadamard_rows_are_scipy_rows_in_any_order():
    rows = torch.tensor([5, 0, 63, 17])
    expected = torch.tensor(hadamard(64)[rows.numpy()], dtype=torch.float64)
    assert torch.equal(projectors.hadamard_rows(64, rows), expected)


@pytest.mark.parametrize("kind", projectors.KINDS)
def test_random_projector_is_a_projector_of_rank_m(kind):
    Pi = projectors.random_projector(32, 8, 2, _gen(), kind=kind)
    assert Pi.shape == (2, 32, 32) and Pi.dtype == torch.float64
    torch.testing.assert_close(Pi @ Pi, Pi)
    torch.testing.assert_close(torch.diagonal(Pi, dim1=-2, dim2=-1).sum(-1),
                               torch.full((2,), 8.0, dtype=torch.float64))


def test_hadamard_projector_has_the_exact_constant_diagonal_of_eq7():
    Pi = projectors.random_projector(64, 16, 3, _gen(1), kind="hadamard")
    assert torch.equal(torch.diagonal(Pi, dim1=-2, dim2=-1), torch.full((3, 64), 0.25, dtype=torch.float64))
    assert torch.equal(Pi * 64, torch.round(Pi * 64))          # every entry exact: integer / n


@pytest.mark.parametrize(("n", "kind"), [(64, "hadamard"), (48, "gaussian"), (64, "gaussian")])
def test_orthonormal_columns(n, kind):
    U = projectors.orthonormal_columns(n, n // 4, 2, _gen(2), kind=kind)
    assert U.shape == (2, n, n // 4)
    torch.testing.assert_close(U.transpose(1, 2) @ U, torch.eye(n // 4, dtype=torch.float64).expand(2, -1, -1))
    if kind == "hadamard":
        torch.testing.assert_close(torch.diagonal(U @ U.transpose(1, 2), dim1=1, dim2=2),
                                   torch.full((2, n), 0.25, dtype=torch.float64))


def test_random_rows_are_distinct_per_instance():
    rows = projectors.random_rows(16, 16, 3, _gen())
    assert rows.shape == (3, 16) and all(sorted(r.tolist()) == list(range(16)) for r in rows)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: projectors.random_projector(24, 8, 1, _gen(), kind="hadamard"), "n_features"),
    (lambda: projectors.random_projector(32, 8, 1, _gen(), kind="orthonormal"), "kind"),
    (lambda: projectors.orthonormal_columns(32, 33, 1, _gen()), "d_hidden"),
    (lambda: projectors.random_projector(32, 8, 0, _gen()), "n_instances"),
    (lambda: projectors.hadamard_rows(64, torch.tensor([0, 64])), "rows"),
    (lambda: projectors.hadamard_rows(64, torch.tensor([3, 3])), "rows"),
    (lambda: projectors.hadamard_rows(48, torch.tensor([0])), "power of two"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
