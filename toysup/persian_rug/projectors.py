"""Random orthogonal projectors of rank m (Persian Rug Eq. 7) and the Sylvester–Hadamard rows that
build the exact ones: the one place in ``toysup.persian_rug`` that draws them.

Eq. (7): the rank bound (6) is saturated by W = (a/r) Π with Π an orthogonal projector of rank m
whose diagonal is constant, Π_ii = r = m/n. Two kinds are drawn here:

* ``kind="hadamard"`` (n a power of two). H_ki = (−1)^popcount(k & i) is the Sylvester–Hadamard
  matrix (``scipy.linalg.hadamard`` order; H = Hᵀ, H² = n I). With S a uniformly random set of m of
  its rows, Π = H_Sᵀ H_S / n has Π_ii = r exactly (every entry of H is ±1, so Π is exact in
  float64), and U = D H_Sᵀ / √n, D a random ±1 diagonal, has orthonormal columns with the same
  diagonal of U Uᵀ. The Persian rug (``toysup.persian_rug.rug``) is (1/r) Π for one such S.
* ``kind="gaussian"``: U the Q factor of a Gaussian (n, m) matrix, uniform over m-dimensional
  subspaces; Π = U Uᵀ has Π_ii = r ± O(n^−1/2) only.

Paper → code: n_s → ``n_features``, n_d → ``d_hidden``, r = m/n. Shapes: a row set S is (m,)
int64 (``random_rows`` draws (k, m), one per instance); H_S (m, n); U (k, n, m); Π (k, n, n);
float64, every draw from the one ``generator``.
"""
import torch
from torch import Tensor

from toysup import checks

KINDS = ("gaussian", "hadamard")


def power_of_two(name: str, n: int) -> int:
    """Return ``n`` if it is a power of two (1, 2, 4, …); else ValueError naming ``name``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n & (n - 1):
        raise ValueError(f"{name} must be a power of two (1, 2, 4, …), got {n!r}")
    return n


def check_rows(n_features: int, rows: Tensor) -> Tensor:
    """``rows`` as an (m,) int64 tensor of distinct indices in [0, n); else ValueError naming it."""
    power_of_two("n_features", n_features)
    given = torch.as_tensor(rows)
    if given.is_floating_point() or given.is_complex() or given.dtype == torch.bool:
        raise ValueError(f"rows must be integer indices in [0, {n_features - 1}], got {given.dtype} values "
                         f"{given.reshape(-1).tolist()[:8]}")
    rows = given.to(torch.int64).reshape(-1)
    if rows.numel() == 0 or rows.min() < 0 or rows.max() >= n_features:
        raise ValueError(f"rows must be non-empty indices in [0, {n_features - 1}], got {rows.tolist()}")
    if rows.unique().numel() != rows.numel():
        raise ValueError("rows must be distinct indices; got repeated entries")
    return rows


def hadamard_rows(n_features: int, rows: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """H_S: rows S of the Sylvester–Hadamard matrix, (m, n) with entries (−1)^popcount(k & i)."""
    rows = check_rows(n_features, rows)
    common = rows[:, None] & torch.arange(n_features)[None, :]
    parity = torch.zeros_like(common)
    for bit in range(max(n_features.bit_length() - 1, 0)):
        parity ^= (common >> bit) & 1
    return (1 - 2 * parity).to(dtype)


def check_sizes(n_features: int, d_hidden: int, n_instances: int) -> None:
    """n ≥ 1, m in [1, n] and k ≥ 1 as integers; else ValueError naming the bad one."""
    checks.positive_int("n_features", n_features)
    checks.positive_int("d_hidden", d_hidden, maximum=n_features)
    checks.positive_int("n_instances", n_instances)


def random_rows(n_features: int, d_hidden: int, n_instances: int, generator: torch.Generator) -> Tensor:
    """(k, m) int64: for every instance, the first m entries of a uniform random permutation of
    {0, …, n − 1} (distinct, in the order drawn)."""
    check_sizes(n_features, d_hidden, n_instances)
    return torch.stack([torch.randperm(n_features, generator=generator)[:d_hidden]
                        for _ in range(n_instances)])


def _check(n_features: int, d_hidden: int, n_instances: int, kind: str) -> None:
    check_sizes(n_features, d_hidden, n_instances)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "hadamard" and n_features & (n_features - 1):
        raise ValueError(f"n_features must be a power of 2 for kind='hadamard', got {n_features}")


def orthonormal_columns(n_features: int, d_hidden: int, n_instances: int, generator: torch.Generator,
                        *, kind: str = "gaussian") -> Tensor:
    """U (k, n, m), float64, with orthonormal columns: U Uᵀ is a rank-m projector (module docstring).

    kind="hadamard": U = D H_Sᵀ / √n (random rows S, then random signs D), diagonal of U Uᵀ exactly r;
    kind="gaussian": the Q factor of a Gaussian (n, m) matrix per instance.
    """
    _check(n_features, d_hidden, n_instances, kind)
    k, n, m = n_instances, n_features, d_hidden
    if kind == "gaussian":
        gauss = torch.randn(k, n, m, generator=generator, dtype=torch.float64)
        return torch.linalg.qr(gauss).Q
    rows = random_rows(n, m, k, generator)
    signs = torch.randint(0, 2, (k, n, 1), generator=generator).double() * 2 - 1
    return signs * hadamard_rows(n, torch.arange(n))[rows].transpose(1, 2) / n ** 0.5


def random_projector(n_features: int, d_hidden: int, n_instances: int, generator: torch.Generator,
                     *, kind: str = "gaussian") -> Tensor:
    """Orthogonal projectors Π of rank m = d_hidden, shape (k, n, n), float64.

    kind="gaussian": Π = U U^T with U from ``orthonormal_columns`` (Π_ii = r ± O(n^−1/2));
    kind="hadamard": Π = H_Sᵀ H_S / n for m random rows S (n a power of 2; Π_ii = r exactly and
    every entry exact in float64).
    """
    _check(n_features, d_hidden, n_instances, kind)
    if kind == "gaussian":
        U = orthonormal_columns(n_features, d_hidden, n_instances, generator, kind="gaussian")
        return U @ U.transpose(-2, -1)
    rows = random_rows(n_features, d_hidden, n_instances, generator)
    HS = hadamard_rows(n_features, torch.arange(n_features))[rows]              # (k, m, n)
    return HS.transpose(-2, -1) @ HS / n_features
