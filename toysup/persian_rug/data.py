"""Permutation-symmetric sparse data (Persian Rug §2; TMS §2), for many model instances at once.

Each of the n features is independently on with probability p (the instance's ``feature_prob``) and
then takes a value uniform on [0, 1]:  x_i = B_i U_i,  B_i ~ Bernoulli(p),  U_i ~ U[0, 1].

Instance k draws from its own ``torch.Generator``, so its data do not depend on which other instances
are trained beside it: k instances trained together see exactly the data they would see alone.

Sampling exploits sparsity: the gaps between consecutive active entries of the flattened
(batch × n) block are i.i.d. Geometric(p), so one draw per *active* entry gives its position and one
more its value — about 2·p draws per entry instead of one or two per entry (tms.md §1.1), which is what
makes data generation cheap next to the model's matrix products at p ≈ 0.05. Each instance's draws
are turned into positions on their own (no padding to the densest instance), and the positions below
batch·n are a prefix of them, so no boolean mask is needed: 3–5× faster than one padded (k, width)
tensor with the same draws and the same numbers.

Shapes: ``feature_prob`` (k,) (``instance_probs`` spreads one value over k instances); a batch
holds x of shape (k, batch, n) in sparse form; ``SparseBatch.dense()`` is (batch, k, n), the layout
used everywhere else in ``toysup``.
"""
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from numbers import Integral

import torch
from torch import Tensor

from toysup import checks


@dataclass(frozen=True)
class SparseBatch:
    """x for k instances, stored as its non-zero entries.

    ``values`` (nnz,) and ``flat`` (nnz,) give x.reshape(-1)[flat] = values for x of shape
    (k, batch, n), sorted by flat index (instance, then sample, then feature).
    """

    values: Tensor
    flat: Tensor
    n_instances: int
    batch: int
    n_features: int

    @classmethod
    def of(cls, x: Tensor) -> "SparseBatch":
        """The non-zero entries of a dense x of shape (k, batch, n) (contiguous)."""
        flat = x.view(-1).nonzero().squeeze(1)
        k, batch, n = x.shape
        return cls(values=x.view(-1).index_select(0, flat), flat=flat, n_instances=k, batch=batch,
                   n_features=n)

    def dense(self) -> Tensor:
        """x as a dense tensor of shape (batch, k, n) (a view of a contiguous (k, batch, n))."""
        x = torch.zeros(self.n_instances * self.batch * self.n_features,
                        dtype=self.values.dtype, device=self.values.device)
        x.scatter_(0, self.flat, self.values)   # scatter_/index_select: 3x faster than [] (torch 2.13, CPU)
        return x.view(self.n_instances, self.batch, self.n_features).transpose(0, 1)

    def instances(self, block: slice) -> "SparseBatch":
        """The instances ``block`` (a slice with step 1) as a SparseBatch of their own (entries
        are sorted by instance, so this is one contiguous run of them)."""
        idx = range(self.n_instances)[block]
        if idx.step != 1 or len(idx) == 0:
            raise ValueError(f"block must be a non-empty slice with step 1, got {block!r}")
        total = self.batch * self.n_features
        bounds = torch.tensor([idx.start * total, idx.stop * total], device=self.flat.device)
        start, stop = torch.searchsorted(self.flat, bounds).tolist()
        return SparseBatch(values=self.values[start:stop], flat=self.flat[start:stop] - idx.start * total,
                           n_instances=len(idx), batch=self.batch, n_features=self.n_features)

    @cached_property
    def block_rows(self) -> tuple[Tensor, Tensor]:
        """Row and column of each entry in the block-diagonal matrix diag(x_1, …, x_k).

        That matrix has shape (k·batch, k·n): instance i's (batch, n) block sits at rows i·batch…
        and columns i·n…, so one sparse product with a (k·n, m) stack serves all instances.
        """
        # In int32 where the indices fit: its division is about 1.7x faster than int64's, and
        # flat − (row − instance)·n = instance·n + flat mod n saves the remainder (one thread, 97k entries:
        # 0.29 ms per int64 division or remainder, 0.17 ms per int32 division).
        small = self.n_instances * self.batch * self.n_features < 2 ** 31
        flat = self.flat.to(torch.int32) if small else self.flat
        row = flat // self.n_features
        instance = row // self.batch
        col = flat - (row - instance) * self.n_features
        return row.long(), col.long()

    @cached_property
    def _bags(self) -> tuple[Tensor, Tensor]:
        """The entries' columns in diag(x_1, …, x_k) and where each of its k·batch rows starts."""
        row, col = self.block_rows
        return col, _starts(row, self.n_instances * self.batch)

    @cached_property
    def _bags_t(self) -> tuple[Tensor, Tensor, Tensor]:
        """The same for the transpose: rows, where each of its k·n rows starts, values."""
        row, col = self.block_rows
        small = self.n_instances * self.n_features < 2 ** 31
        order = stable_order(col.to(torch.int32) if small else col)   # int32: ~2x faster
        return (row.index_select(0, order), _starts(col.index_select(0, order),
                                                    self.n_instances * self.n_features),
                self.values.index_select(0, order))

    def times(self, stack: Tensor) -> Tensor:
        """diag(x_1, …, x_k) · stack: (k·n, m) → (k·batch, m), one sparse product for all instances."""
        col, starts = self._bags
        return _weighted_rows(col, stack, starts, self.values)

    def t_times(self, grad: Tensor) -> Tensor:
        """diag(x_1, …, x_k)ᵀ · grad: (k·batch, m) → (k·n, m)."""
        row, starts, values = self._bags_t
        return _weighted_rows(row, grad, starts, values)


# A sparse product S·D from S's entries sorted by row: output row r sums values·D[index] over the entries
# starts[r]…starts[r+1]. embedding_bag (mode "sum", per-sample weights) did this 2-3.4x faster than a
# CSR tensor's product (torch 2.13, one thread; n = 256…2048, m = n/4, p = 0.04-0.07: 0.31 against 0.10 ms
# at n = 256, 12.9 against 6.1 ms at n = 2048), to float32 rounding.
def _weighted_rows(index: Tensor, dense: Tensor, starts: Tensor, values: Tensor) -> Tensor:
    """Σ over the entries of each output row of values · dense[index] (see above)."""
    return torch.nn.functional.embedding_bag(index, dense, starts, mode="sum", per_sample_weights=values)


# torch's CPU sort is a radix sort from 32,768 entries on (its grain size) and a comparison sort below:
# 1.66 ms for 32,767 int32 keys, 0.14 ms for 32,768 (torch 2.13, one thread, an AMD EPYC). Padding a
# shorter key vector with keys past every real one to that length gives the same stable order 3-12x
# faster: from about RADIX_PAD entries on, where the comparison sort costs more than the radix sort of
# RADIX_MIN (0.13 ms): 0.12 ms for 4,096 keys, 0.31 for 8,000, 0.93 for 20,000.
RADIX_MIN = 32768
RADIX_PAD = 5000


def stable_order(key: Tensor) -> Tensor:
    """The permutation that sorts the 1-D integer ``key`` stably (``torch.sort(key, stable=True)``'s
    indices), short vectors padded to ``RADIX_MIN`` entries on the CPU (see above)."""
    n = key.numel()
    if key.device.type != "cpu" or not RADIX_PAD <= n < RADIX_MIN:
        return torch.sort(key, stable=True).indices
    past = int(key.max()) + 1
    padded = torch.cat([key, key.new_full((RADIX_MIN - n,), past)])
    return torch.sort(padded, stable=True).indices[:n]


def _starts(row: Tensor, n_rows: int) -> Tensor:
    """Where each of ``n_rows`` rows starts among entries sorted by ``row`` (n_rows,)."""
    starts = torch.zeros(n_rows, dtype=torch.int64, device=row.device)
    torch.cumsum(torch.bincount(row, minlength=n_rows)[:-1], 0, out=starts[1:])
    return starts


def instance_probs(feature_prob: float | Sequence[float] | Tensor, n_instances: int) -> Tensor:
    """feature_prob as a float64 tensor of shape (k,): one value for every instance, or k values."""
    p = checks.probabilities("feature_prob", feature_prob)
    p = p.expand(n_instances) if p.numel() == 1 else p
    if p.numel() != n_instances:
        raise ValueError(f"feature_prob must hold 1 or n_instances={n_instances} values, got {p.numel()}")
    return p


def make_generators(seeds: list[int], device: torch.device) -> list[torch.Generator]:
    """One torch.Generator per instance, seeded with that instance's seed: an integer (Python or
    numpy) in [0, 2**64 - 1], torch's range; else ValueError naming ``seeds``."""
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, Integral) or not 0 <= s < 2**64]
    if bad:
        raise ValueError(f"seeds must be integers in [0, 2**64 - 1], got {bad[0]!r}")
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def _gap_budget(prob: float, total: int) -> int:
    """Number of geometric gaps that covers ``total`` Bernoulli(prob) trials, except with
    probability below 1e-15 (mean + 8 standard deviations + 32)."""
    mean = total * prob
    return min(total, math.ceil(mean + 8 * math.sqrt(mean * (1 - prob)) + 32))


def sample_sparse(feature_prob: Tensor, batch: int, n_features: int,
                  generators: list[torch.Generator]) -> SparseBatch:
    """Draw x ~ (1−p)δ₀ + p·U[0, 1] i.i.d. for every instance, sample and feature.

    feature_prob (k,) in (0, 1]; one generator per instance (see ``make_generators``).
    Returns a SparseBatch for x of shape (k, batch, n).
    """
    checks.positive_int("batch", batch)
    checks.positive_int("n_features", n_features)
    p = checks.probabilities("feature_prob", feature_prob)
    if len(generators) != p.numel():
        raise ValueError(f"generators must hold one generator per instance ({p.numel()}), "
                         f"got {len(generators)}")
    total = batch * n_features
    # Gap G = floor(log(1−u) / log(1−p)) ~ Geometric(p) on {0, 1, …}; for p = 1 every gap is 0.
    log_qs = torch.log1p(-p.cpu()).clamp_min(-1e30).tolist()
    flats, values = [], []
    for i, (gen, prob, log_q) in enumerate(zip(generators, p.tolist(), log_qs)):
        budget = _gap_budget(prob, total)
        draws = torch.rand(2 * budget, generator=gen, device=gen.device)
        gaps = torch.floor(torch.log1p(-draws[:budget].double()) / log_q).clamp_max_(total).long()
        position = torch.cumsum(gaps.add_(1), dim=0).sub_(1)      # increasing: keep a prefix
        # Complete if a drawn position lies past the block, or if every entry of it was drawn.
        if budget < total and int(position[-1]) < total:  # probability < 1e-15, see _gap_budget
            raise RuntimeError("gap budget exhausted; please report this seed")
        kept = int(torch.searchsorted(position, total))
        flats.append(position[:kept].add_(i * total))
        values.append(draws[budget:budget + kept])
    return SparseBatch(values=torch.cat(values), flat=torch.cat(flats), n_instances=p.numel(),
                       batch=batch, n_features=n_features)


def sample_features(feature_prob: Tensor, batch: int, n_features: int,
                    generators: list[torch.Generator]) -> Tensor:
    """Dense x of shape (batch, k, n); see ``sample_sparse``."""
    return sample_sparse(feature_prob, batch, n_features, generators).dense()
