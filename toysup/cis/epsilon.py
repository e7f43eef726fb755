"""ε as the paper means it for U-AND (cis spec §1.3, §2, §3): the worst-case read-off error, the
connection density that minimises it, and the fewest neurons that reach a given ε.

ε-accuracy is an L∞ statement: the maximum over all pairs i < j and all s-sparse inputs of
|y_ij - x_i x_j|. At book sizes it cannot be enumerated (C(m, 2) pairs times C(m, s) inputs), so every
ε here is the maximum over a stated set of evaluations, a lower bound on the paper's ε:
  * the random sample: T inputs with exactly s features on, each scored on its C(s, 2) both-on
    pairs, n_one one-on and n_none none-on pairs (``uand.draw_inputs``);
  * targeted hard cases, chosen from the network itself:
      hard pairs   -- of n_candidates uniformly random pairs, the n_hard with the fewest shared
                      neurons |N_ij| (the least averaging; |N_ij| = 0 leaves a pair unreadable:
                      read-off 0, error 1 when both are on);
      random pairs -- the first n_hard candidates, as a control;
      hard inputs  -- for each of these pairs, the features l outside the pair read by the most
                      neurons of N_ij (largest overlap |N_ij & S_l|, ties to the lower index), switched
                      on beside i (one on), beside j (one on) and beside both (both on).

U1, basis-aligned inputs: these inputs are the exact worst case of a pair. A neuron k of N_ij outputs
(#on of i, j) - 1 + n_k when i or j is on (n_k: the other active features it reads), so the read-off
error is sum_l |N_ij & S_l| / |N_ij| over the other active features (s-2 of them both on, s-1 one on);
with neither on it is mean ReLU(n_k - 1), at most the one-on error of any s-1 of its features. Every
error is >= 0, hence
    ε_ij = (sum of the s-1 largest |N_ij & S_l|, l not in {i, j}) / |N_ij|      (1 if |N_ij| = 0),
``worst_case_basis``. U2, inputs in superposition (x = Phi b, W = B Phi^T): the same inputs are hard
cases, not proven worst cases (the interference is not in the overlap count).

The search, so that exponents emerge instead of being set by p = sqrt(K/d): ``basis_epsilon`` and
``superposed_epsilon`` score every connection probability of a fixed log grid on one draw of keys U
(B_p = U < p: nested networks, common random numbers) and ``best`` keeps the p of smallest ε;
``fewest_neurons`` finds the smallest width of a log grid whose best ε reaches a target (galloping from
a start index, then bisecting) and interpolates log-log between the bracketing widths;
``neurons_needed_search`` runs it along m (d*(m)), ``neurons_needed_by_sparsity`` along s at fixed m
(d*(s), U1), each search starting where the previous value's reached the target (``_needed_along``);
``bracketing`` and ``grid_edge`` tell whether the p search bracketed its optimum at the widths that
decide d*.

Shapes: B (d, m) bool; pairs (P, 2) long; partners, overlaps (P, n) long; counts (P,) long;
active (T, s) long; tuples (T, Q, 2) long.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from toysup import checks
from toysup.cis import uand

SOURCES = ("random inputs", "worst input, random pairs", "worst input, hard pairs")


@dataclass(frozen=True)
class Sample:
    """What an ε is the maximum over: the random sample and the hard-case budget (module docstring)."""
    n_inputs: int = 200        # T, random inputs with exactly s on
    n_one: int = 5             # one-on pairs per random input
    n_none: int = 5            # none-on pairs per random input
    n_candidates: int = 4000   # random pairs the hard pairs are chosen from
    n_hard: int = 64           # hard pairs (and as many control pairs)
    seed_inputs: int = 1       # inputs, pairs and candidates

    def __post_init__(self) -> None:
        for name in ("n_inputs", "n_candidates", "n_hard"):
            checks.positive_int(name, getattr(self, name))
        for name in ("n_one", "n_none"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) \
                    or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        checks.positive_int("n_hard", self.n_hard, maximum=self.n_candidates)
        checks.seed("seed_inputs", self.seed_inputs)


# ---------------------------------------------------------------------------------------- hard cases
def candidate_pairs(n_features: int, n_candidates: int, seed: int) -> Tensor:
    """n_candidates uniformly random pairs i < j (with replacement between pairs): (n, 2) long."""
    checks.positive_int("n_features", n_features)
    if n_features < 2:
        raise ValueError(f"n_features must be >= 2 to have pairs, got {n_features}")
    gen = torch.Generator().manual_seed(checks.seed("seed", seed))
    i = torch.randint(0, n_features, (n_candidates,), generator=gen)
    j = torch.randint(0, n_features - 1, (n_candidates,), generator=gen)
    j = j + (j >= i)
    return torch.stack([torch.minimum(i, j), torch.maximum(i, j)], dim=1)


def _features_first(B: Tensor, Bt: Tensor | None) -> Tensor:
    """B^T (m, d) contiguous: rows are features (pass it in when it is already at hand)."""
    return B.T.contiguous() if Bt is None else Bt


def shared_counts(B: Tensor, pairs: Tensor, *, Bt: Tensor | None = None) -> Tensor:
    """|N_ij| = #{k : B_ki = B_kj = 1} for each pair: (P,) long. Bt: B^T contiguous, if at hand.
    The k = 2 case of ``tuple_counts``."""
    return tuple_counts(B, pairs, Bt=Bt)


def hard_pairs(B: Tensor, candidates: Tensor, n_hard: int, *, Bt: Tensor | None = None) -> Tensor:
    """The n_hard candidates with the fewest shared neurons (stable: ties keep candidate order)."""
    order = torch.argsort(shared_counts(B, candidates, Bt=Bt), stable=True)
    return candidates[order[:n_hard]]


def top_partners(B: Tensor, pairs: Tensor, n_partners: int, *, Bt: Tensor | None = None
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """For each pair, the n_partners features l outside it read by the most neurons of N_ij.

    Returns (partners (P, n) long, overlaps |N_ij & S_l| (P, n) long, counts |N_ij| (P,) long);
    ties go to the lower feature index (a pair with |N_ij| = 0 gets features 0, 1, ... with overlap 0).
    The k = 2 case of ``tuple_partners``.
    """
    return tuple_partners(B, pairs, n_partners, Bt=Bt)


def worst_case_basis(overlaps: Tensor, counts: Tensor, n_active: int) -> Tensor:
    """Exact worst-case |error| of U1 over all s-sparse inputs, per pair (module docstring):
    the s-1 largest overlaps summed over |N_ij|; 1 where |N_ij| = 0. (P,) float64."""
    checks.positive_int("n_active", n_active)
    if n_active < 2:
        raise ValueError(f"n_active must be >= 2, got {n_active}")
    total = overlaps[:, :n_active - 1].sum(1).double()
    return torch.where(counts > 0, total / counts.clamp(min=1).double(), torch.ones_like(total))


def hard_inputs(pairs: Tensor, partners: Tensor, n_active: int) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs that switch on each pair's top partners beside i, beside j and beside both.

    pairs (P, 2), partners (P, >= s-1) -> (active (3P, s) long, tuples (3P, 1, 2) long,
    case (3P,) long: 1 one on, 0 both on), in the order [one on (i)] * P, [one on (j)] * P, [both] * P.
    """
    s = n_active
    if partners.shape[1] < s - 1:
        raise ValueError(f"partners must hold >= n_active - 1 = {s - 1} columns")
    one_i = torch.cat([pairs[:, :1], partners[:, :s - 1]], dim=1)
    one_j = torch.cat([pairs[:, 1:], partners[:, :s - 1]], dim=1)
    both = torch.cat([pairs, partners[:, :s - 2]], dim=1)
    active = torch.cat([one_i, one_j, both])
    tuples = pairs.repeat(3, 1)[:, None, :]
    case = torch.cat([torch.ones(2 * len(pairs)), torch.zeros(len(pairs))]).long()
    return active, tuples, case


def _hard_sets(B: Tensor, Bt: Tensor, candidates: Tensor, n_hard: int, n_active: int):
    """{source: (pairs, partners, overlaps, counts)} for the control and the hard pairs."""
    sets = {}
    for source, pairs in [(SOURCES[1], candidates[:n_hard]),
                          (SOURCES[2], hard_pairs(B, candidates, n_hard, Bt=Bt))]:
        sets[source] = (pairs, *top_partners(B, pairs, max(1, n_active - 1), Bt=Bt))
    return sets


# ---------------------------------------------------------------------------------------- summaries
def summarize(errors: dict[str, Tensor], frac_empty: float) -> dict[str, float]:
    """ε and the distribution beside it from |error| per source: mean, q50, q99, q999 of the random
    sample, the maximum of each source ('max_random', 'max_worst_random', 'max_worst_hard'), their
    maximum 'epsilon', and the fraction of random-sample pairs with |N_ij| = 0."""
    rand = errors[SOURCES[0]].double().reshape(-1).cpu().numpy()
    keys = ("max_random", "max_worst_random", "max_worst_hard")
    maxima = {k: float(errors[s].abs().max()) for k, s in zip(keys, SOURCES)}
    q50, q99, q999 = np.quantile(np.abs(rand), [0.5, 0.99, 0.999])
    return {"mean": float(np.abs(rand).mean()), "q50": float(q50), "q99": float(q99),
            "q999": float(q999), **maxima, "epsilon": max(maxima.values()),
            "frac_empty": frac_empty}


def best(table: pd.DataFrame, by: Sequence[str] = ("m", "d", "seed_network")) -> pd.DataFrame:
    """Per group, the row of smallest ε (ties: the smaller p), plus 'at_edge': True where that p is
    the smallest or largest of the group's own grid (the optimum may lie outside it; grids that move
    with d are judged each on its own)."""
    grid = table.groupby(list(by))["p"]
    edge = table["p"].eq(grid.transform("min")) | table["p"].eq(grid.transform("max"))
    return table.assign(at_edge=edge).sort_values(["epsilon", "p"]).groupby(list(by), as_index=False).first()


# ---------------------------------------------------------------------------------------- U1
def basis_epsilon(n_features: int, d_hidden: int, probs: Sequence[float], *, n_active: int = 3,
                  sample: Sample = Sample(), seed_network: int = 0) -> pd.DataFrame:
    """ε of U1 at every connection probability of ``probs`` (one draw of keys, nested networks).

    One row per p: m, d, seed_network, p, K = p^2 d, the ``summarize`` columns. The random sample is
    scored through the network; hard cases by their exact worst case (``worst_case_basis``)."""
    m, d = n_features, d_hidden
    keys = uand.connection_keys(m, d, torch.Generator().manual_seed(checks.seed("seed_network",
                                                                                  seed_network)))
    active, pairs, _ = uand.draw_inputs(m, n_active, sample.n_inputs, sample.n_one, sample.n_none,
                                        sample.seed_inputs)
    candidates = candidate_pairs(m, sample.n_candidates, sample.seed_inputs)
    target = (pairs[..., :1] == active[:, None, :]).any(-1) & (pairs[..., 1:] == active[:, None, :]).any(-1)
    rows = []
    for p in probs:
        B = keys < checks.unit_interval("probs", float(p))
        Bt = B.T.contiguous()
        values, counts = uand.and_readout(uand.activation(uand.preactivation_basis(B, active), -1.0),
                                          B, pairs, Bt=Bt)
        errors = {SOURCES[0]: values - target.float()}
        for source, (_, _, overlaps, cnt) in _hard_sets(B, Bt, candidates, sample.n_hard,
                                                        n_active).items():
            errors[source] = worst_case_basis(overlaps, cnt, n_active)
        rows.append({"m": m, "d": d, "seed_network": seed_network, "p": float(p),
                     "K": float(p) ** 2 * d,
                     **summarize(errors, float((counts == 0).double().mean()))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- U2
def local_readout(B: Tensor, Bt: Tensor, overlaps: Tensor, tuples: Tensor, bias: float = -1.0
                  ) -> tuple[Tensor, Tensor]:
    """``uand.and_readout`` of ReLU(B (Phi^T x) + bias), each input's pre-activations computed only
    at the neurons its tuples read (the others stay 0 and are never read).

    Bt = B^T contiguous; overlaps (T, m) = x^T Phi; tuples (T, Q, k) -> (values, counts) (T, Q)."""
    T, Q, k = tuples.shape
    act = torch.zeros(T, B.shape[0])
    for t in range(T):
        mask = Bt.index_select(0, tuples[t, :, 0])
        for c in range(1, k):
            mask &= Bt.index_select(0, tuples[t, :, c])
        neurons = torch.nonzero(mask.any(0)).reshape(-1)
        pre = B.index_select(0, neurons).to(torch.float32) @ overlaps[t]
        act[t, neurons] = uand.activation(pre, bias)
    return uand.and_readout(act, B, tuples, Bt=Bt)


def superposed_epsilon(n_features: int, d_hidden: int, probs: Sequence[float], *,
                       d_input: int | None = None, n_active: int = 2, sample: Sample = Sample(),
                       seed_network: int = 0) -> pd.DataFrame:
    """ε of U2 (x = Phi b, W = B Phi^T, bias -1, d_input defaulting to d) at every p of ``probs``.

    One row per p, the columns of ``basis_epsilon``; every evaluation (random sample and hard
    cases) goes through the superposed network. B_p = U < p from one draw of keys; Phi is drawn from
    seed_network and entered only through ``uand.embedding_gram`` of the features the inputs use
    (never whole)."""
    m, d = n_features, d_hidden
    d0 = d if d_input is None else checks.positive_int("d_input", d_input)
    keys = uand.connection_keys(m, d, torch.Generator().manual_seed(checks.seed("seed_network",
                                                                                  seed_network)))
    active, pairs, _ = uand.draw_inputs(m, n_active, sample.n_inputs, sample.n_one, sample.n_none,
                                        sample.seed_inputs)
    candidates = candidate_pairs(m, sample.n_candidates, sample.seed_inputs)
    nets = []
    for p in probs:
        B = keys < checks.unit_interval("probs", float(p))
        Bt = B.T.contiguous()
        hard = {s: hard_inputs(pr, partners, n_active) for s, (pr, partners, _, _)
                in _hard_sets(B, Bt, candidates, sample.n_hard, n_active).items()}
        nets.append((float(p), B, Bt, hard))
    used = torch.cat([active.reshape(-1)] + [h[0].reshape(-1) for *_, hs in nets for h in hs.values()])
    features, position = torch.unique(used, return_inverse=True)
    gram = uand.embedding_gram(features, m, d0, seed_network)          # (m, F)

    def overlaps_of(start: int, act: Tensor) -> Tensor:               # x^T Phi for inputs (T, s)
        pos = position[start:start + act.numel()].reshape(act.shape)
        return gram[:, pos.reshape(-1)].reshape(m, *act.shape).sum(2).T

    target = (pairs[..., :1] == active[:, None, :]).any(-1) & (pairs[..., 1:] == active[:, None, :]).any(-1)
    ov_random = overlaps_of(0, active)
    start, rows = active.numel(), []
    for p, B, Bt, hard in nets:
        values, counts = local_readout(B, Bt, ov_random, pairs)
        errors = {SOURCES[0]: values - target.float()}
        for source, (act_h, tup_h, case_h) in hard.items():
            val_h, _ = local_readout(B, Bt, overlaps_of(start, act_h), tup_h)
            errors[source] = val_h[:, 0] - (case_h == 0).float()
            start += act_h.numel()
        rows.append({"m": m, "d": d, "d_input": d0, "seed_network": seed_network, "p": p,
                     "K": p ** 2 * d, **summarize(errors, float((counts == 0).double().mean()))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- search over d
def fewest_neurons(epsilon_at: Callable[[int], float], widths: Sequence[int], target: float, *,
                   start: int = 0) -> tuple[float, dict[int, float]]:
    """Smallest width of the log grid ``widths`` whose ε reaches ``target``, assuming ε falls with d.

    Gallops from widths[start] (down while it passes, up while it fails, doubling the step), then
    bisects the bracket; ε is evaluated only there. Returns (d*, {d: ε evaluated}): d* interpolated
    log-log between the bracketing widths (``uand.neurons_needed``), widths[0] if even the first
    passes, inf if the last fails."""
    widths = [int(w) for w in widths]
    if sorted(widths) != widths or len(set(widths)) != len(widths):
        raise ValueError("widths must be strictly increasing")
    if not 0 <= start < len(widths):
        raise ValueError(f"start must index widths (0..{len(widths) - 1}), got {start}")
    seen: dict[int, float] = {}

    def passes(i: int) -> bool:
        if widths[i] not in seen:
            seen[widths[i]] = float(epsilon_at(widths[i]))
        return seen[widths[i]] <= target

    step, lo, hi = 1, -1, len(widths)          # widths[lo] fails (or lo = -1), widths[hi] passes
    if passes(start):
        hi = start
        while hi > 0 and lo < 0:
            probe = max(0, hi - step)
            if passes(probe):
                hi = probe
            else:
                lo = probe
            step *= 2
    else:
        lo = start
        while hi == len(widths) and lo < len(widths) - 1:
            probe = min(len(widths) - 1, lo + step)
            if passes(probe):
                hi = probe
            else:
                lo = probe
            step *= 2
    while hi - lo > 1 and hi < len(widths) and lo >= 0:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    if hi == len(widths):
        return float("inf"), seen
    if lo < 0:
        return float(widths[0]), seen
    d_pair = [widths[lo], widths[hi]]
    return uand.neurons_needed(d_pair, [seen[w] for w in d_pair], target), seen


def bracketing(best_rows: pd.DataFrame, target: float, by: Sequence[str]) -> pd.DataFrame:
    """The rows of ``best`` (one per group of ``by`` and width d) at the two widths that decide each
    group's d*: the first width whose ε reaches ``target`` and the widest failing one below it (only
    the passing one where none below was scored, none where no width passes). The grid-edge test
    of a search belongs here, not at the widths a gallop overshot to."""
    keep = []
    for _, rows in best_rows.groupby(list(by)):
        passing = rows.loc[rows["epsilon"] <= target, "d"]
        if passing.empty:
            continue
        failing = rows.loc[(rows["epsilon"] > target) & (rows["d"] < passing.min()), "d"]
        keep.append(rows[rows["d"].isin([passing.min()] + ([failing.max()] if len(failing) else []))])
    return pd.concat(keep) if keep else best_rows.iloc[:0]


def grid_edge(rows: pd.DataFrame, n_shared: Sequence[float]) -> pd.Series:
    """True where a row's K = p^2 d is an end of the searched grid ``probs_for(n_shared, d)``: the
    smallest K, or the largest (min(K_max, d), where p reaches 1): its optimum may lie outside."""
    return pd.Series(np.isclose(rows["K"], min(n_shared))
                     | np.isclose(rows["K"], np.minimum(max(n_shared), rows["d"])), index=rows.index)


def probs_for(n_shared: Sequence[float], d_hidden: int) -> list[float]:
    """The search grid of connection probabilities at width d: p = min(1, sqrt(K / d)) for every K
    of the log grid ``n_shared`` -- a log grid in p that moves with d. The search picks the K of
    smallest ε per (m, d) (``best``), so no K, and no exponent, is fixed in advance."""
    checks.positive_int("d_hidden", d_hidden)
    if len(n_shared) == 0 or any(not k > 0 for k in n_shared):
        raise ValueError(f"n_shared must be a non-empty grid of values > 0, got {n_shared!r}")
    return [min(1.0, float(np.sqrt(k / d_hidden))) for k in n_shared]


def basis_sweep(points: Sequence[tuple[int, int]], n_shared: Sequence[float], *, n_active: int,
                sample: Sample, network_seeds: Sequence[int], progress=None) -> pd.DataFrame:
    """``basis_epsilon`` at every (m, d) of ``points``, network seed and p of ``probs_for``: one row
    per (m, d, seed_network, p). ``progress``: an optional tqdm bar, advanced once per network."""
    tables = []
    for m, d in points:
        for seed in network_seeds:
            tables.append(basis_epsilon(m, d, probs_for(n_shared, d), n_active=n_active,
                                        sample=sample, seed_network=seed))
            if progress is not None:
                progress.update(1)
    return pd.concat(tables, ignore_index=True)


def _needed_along(values: Sequence[int], epsilon_at: Callable[[int, int], float], widths: list[int],
                  target: float, start: int) -> list[dict]:
    """``fewest_neurons`` for each of the increasing ``values`` (m, or s) of one network seed: the
    first search gallops from widths[start], each later one from the width where the previous value
    first reached the target (more features, or more of them on, never need fewer neurons).
    epsilon_at(value, d) -> best ε. One dict per value: d_star, evaluated (widths scored)."""
    rows = []
    for value in values:
        d_star, seen = fewest_neurons(lambda d, value=value: epsilon_at(value, d), widths, target,
                                      start=start)
        reached = [w for w, e in seen.items() if e <= target]
        start = widths.index(min(reached)) if reached else len(widths) - 1
        rows.append({"d_star": d_star, "evaluated": len(seen)})
    return rows


def neurons_needed_search(kind: str, n_features: Sequence[int], widths: Sequence[int],
                          n_shared: Sequence[float], target: float, *,
                          network_seeds: Sequence[int], n_active: int, sample: Sample = Sample(),
                          progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """d*(m): per network seed and m, the fewest neurons whose best ε over ``probs_for(n_shared, d)``
    reaches ``target``, by ``fewest_neurons`` on the log grid ``widths`` (d0 = d for "superposed").

    The search for the smallest m starts at the first width >= m (no superposition), each later m
    at the width where the previous m first reached the target (``_needed_along``). Returns
    (evaluations: every (m, d, seed, p) row scored; needed: one row per (m, seed_network) with
    d_star and the number of widths evaluated). ``progress``: an optional tqdm bar, advanced once
    per width evaluated."""
    score = {"basis": basis_epsilon, "superposed": superposed_epsilon}
    if kind not in score:
        raise ValueError(f"kind must be 'basis' or 'superposed', got {kind!r}")
    widths = [int(w) for w in widths]
    evaluations, needed = [], []
    for seed in network_seeds:
        def epsilon_at(m: int, d: int, seed: int = seed) -> float:
            table = score[kind](m, d, probs_for(n_shared, d), n_active=n_active, sample=sample,
                                seed_network=seed)
            evaluations.append(table)
            if progress is not None:
                progress.update(1)
            return float(table["epsilon"].min())

        start = next((i for i, w in enumerate(widths) if w >= min(n_features)), len(widths) - 1)
        ms = sorted(n_features)
        for m, row in zip(ms, _needed_along(ms, epsilon_at, widths, target, start)):
            needed.append({"m": m, "seed_network": seed, **row})
    return pd.concat(evaluations, ignore_index=True), pd.DataFrame(needed)


def neurons_needed_by_sparsity(n_features: int, n_active: Sequence[int], widths: Sequence[int],
                               n_shared: Sequence[float], target: float, *,
                               network_seeds: Sequence[int], sample: Sample = Sample(),
                               progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """d*(s) of U1 at fixed m: per network seed and sparsity s, the fewest neurons whose best ε
    (``basis_epsilon`` over ``probs_for(n_shared, d)``, so p is searched per (s, d)) reaches
    ``target``, by ``fewest_neurons`` on the log grid ``widths``.

    The smallest s starts at widths[0], each larger s at the width where the previous one first
    reached the target (``_needed_along``). Returns (evaluations: every (s, d, seed, p) row scored,
    with a column n_active; needed: one row per (n_active, seed_network) with m, d_star, evaluated).
    ``progress``: an optional tqdm bar, advanced once per width evaluated."""
    checks.positive_int("n_features", n_features)
    if len(n_active) == 0 or any(isinstance(s, bool) or not isinstance(s, int) or s < 2
                                 for s in n_active):
        raise ValueError(f"n_active must be a non-empty list of integers >= 2, got {n_active!r}")
    widths = [int(w) for w in widths]
    evaluations, needed = [], []
    for seed in network_seeds:
        def epsilon_at(s: int, d: int, seed: int = seed) -> float:
            table = basis_epsilon(n_features, d, probs_for(n_shared, d), n_active=s, sample=sample,
                                  seed_network=seed).assign(n_active=s)
            evaluations.append(table)
            if progress is not None:
                progress.update(1)
            return float(table["epsilon"].min())

        ss = sorted(n_active)
        for s, row in zip(ss, _needed_along(ss, epsilon_at, widths, target, 0)):
            needed.append({"n_active": s, "m": n_features, "seed_network": seed, **row})
    return pd.concat(evaluations, ignore_index=True), pd.DataFrame(needed)


# ---------------------------------------------------------------------------------------- dense
def dense_errors(widths: Sequence[int], *, features_per_neuron: int = 1, n_active: int = 3,
                 n_inputs: int = 64, network_seeds: Sequence[int] = (0, 1, 2),
                 seed_inputs: int = 1) -> pd.DataFrame:
    """Dense U-AND (spec §6; ``and_mlp.construct("dense")``: Rademacher W, bias 0, read-off
    sign(w_ki w_kj) / (d c_D(s))) with m = features_per_neuron * d, scored on every pair that touches
    an input's active set: its C(s, 2) both-on and s (m - s) one-on pairs, for T random inputs.

    The number of pairs scored grows like d, so the maximum samples the tail that the law
    "mean |error| = Θ(1/sqrt d), max over pairs = Θ(log d / sqrt d)" is about. One row per
    (d, seed_network): d, m, seed_network, mean_abs, q99, max_abs, n_scored."""
    from toysup.cis import and_mlp            # and_mlp imports uand only; kept local to the dense part
    gain = and_mlp.dense_gain(n_active)
    rows = []
    for d in widths:
        m = checks.positive_int("features_per_neuron", features_per_neuron) * d
        active = uand.sample_distinct(n_inputs, m, n_active, torch.Generator().manual_seed(seed_inputs))
        for seed in network_seeds:
            W = and_mlp.dense_weights(m, d, torch.Generator().manual_seed(seed))
            act = torch.relu(W[:, active].sum(2))                                  # (d, T)
            probe = W[:, active.reshape(-1)] * act.repeat_interleave(n_active, dim=1)
            readout = (W.T @ probe / (d * gain)).T.reshape(n_inputs, n_active, m)  # y_(a, j)
            on = torch.zeros(n_inputs, m, dtype=torch.bool).scatter_(1, active, True)
            err = readout - on[:, None, :].float()
            keep = ~on[:, None, :].expand_as(err).clone()                          # one on: j off
            later = active[:, None, :] > active[:, :, None]                        # both on, a < j
            keep.scatter_(2, active[:, None, :].expand(-1, n_active, -1), later)
            e = err[keep].abs().double().numpy()
            rows.append({"d": d, "m": m, "seed_network": seed, "mean_abs": float(e.mean()),
                         "q99": float(np.quantile(e, 0.99)), "max_abs": float(e.max()),
                         "n_scored": int(e.size)})
    return pd.DataFrame(rows)


def gaussian_max_theory(mean_abs, n_scored):
    """Largest |error| expected among N independent N(0, sigma^2) errors whose mean |error| is
    mean_abs: sigma sqrt(2 ln N) with sigma = mean_abs sqrt(pi / 2), i.e. mean_abs sqrt(pi ln N)."""
    return np.asarray(mean_abs, float) * np.sqrt(np.pi * np.log(np.asarray(n_scored, float)))


# ---------------------------------------------------------------------------------------- k-tuples
# k-input ANDs (cis spec §4.1; ``toysup.cis.boolean``): the pair machinery above for tuples of any size.
# A neuron of N_T with j of the tuple's k features on outputs ReLU(j + n - (k-1)), n the other active
# features it reads. All on (s-k others) the error is sum_l |N_T & S_l| / |N_T|; with k-1 on (s-k+1
# others) it is the same sum over one more feature; with j < k-1 on it is mean ReLU(n - (k-1-j)), at most
# the count over any s-k+1 of its s-j others (dropping k-1-j features lowers n by at most k-1-j). So the
# exact worst case of a tuple over all s-sparse inputs is the pair formula with s-k+1 partners:
#     ε_T = (sum of the s-k+1 largest |N_T & S_l|, l not in T) / |N_T|      (1 if |N_T| = 0).
def candidate_tuples(n_features: int, k: int, n_candidates: int, seed: int) -> Tensor:
    """n_candidates uniformly random k-tuples of distinct features, each sorted: (n, k) long."""
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n_features:
        raise ValueError(f"k must be an integer in [2, n_features={n_features}], got {k!r}")
    gen = torch.Generator().manual_seed(checks.seed("seed", seed))
    return uand.sample_distinct(n_candidates, n_features, k, gen).sort(dim=1).values


def tuple_counts(B: Tensor, tuples: Tensor, *, Bt: Tensor | None = None) -> Tensor:
    """|N_T| = #{n : B_ni = 1 for every i in T} per tuple: tuples (P, k) -> (P,) long."""
    Bt = _features_first(B, Bt)
    mask = Bt.index_select(0, tuples[:, 0])
    for c in range(1, tuples.shape[1]):
        mask &= Bt.index_select(0, tuples[:, c])
    return mask.view(torch.uint8).sum(1, dtype=torch.int64)


def hard_tuples(B: Tensor, candidates: Tensor, n_hard: int, *, Bt: Tensor | None = None) -> Tensor:
    """The n_hard candidate tuples with the fewest neurons reading all of them (ties: candidate order)."""
    checks.positive_int("n_hard", n_hard, maximum=len(candidates))
    order = torch.argsort(tuple_counts(B, candidates, Bt=Bt), stable=True)
    return candidates[order[:n_hard]]


def tuple_partners(B: Tensor, tuples: Tensor, n_partners: int, *, Bt: Tensor | None = None
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """For each k-tuple, the n_partners features l outside it read by the most neurons of N_T.

    tuples (P, k) -> (partners (P, n) long, overlaps |N_T & S_l| (P, n) long, counts |N_T| (P,) long);
    ties go to the lower feature index. ``top_partners`` is its k = 2 case."""
    d, m = B.shape
    checks.positive_int("n_partners", n_partners, maximum=m - tuples.shape[1])
    partners = torch.empty(len(tuples), n_partners, dtype=torch.long)
    overlaps = torch.empty(len(tuples), n_partners, dtype=torch.long)
    Bt = _features_first(B, Bt)
    counts = tuple_counts(B, tuples, Bt=Bt)
    rank = torch.arange(m, dtype=torch.float64) / (m + 1)
    for row, members in enumerate(tuples):
        neurons = torch.nonzero(Bt.index_select(0, members).all(0)).reshape(-1)
        ov = B.index_select(0, neurons).view(torch.uint8).sum(0, dtype=torch.int64)  # |N_T & S_l|
        ov[members] = -1
        top = (ov.double() * (m + 1) - rank).topk(n_partners).indices    # lowest index among ties
        partners[row], overlaps[row] = top, ov[top]
    return partners, overlaps, counts


def worst_case_tuples(overlaps: Tensor, counts: Tensor, n_active: int, k: int) -> Tensor:
    """Exact worst-case |error| of the k-input AND over all s-sparse inputs, per tuple (comment above):
    ``worst_case_basis`` with s-k+1 partners. overlaps (P, >= s-k+1), counts (P,) -> (P,) float64."""
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n_active:
        raise ValueError(f"k must be an integer in [2, n_active={n_active}], got {k!r}")
    return worst_case_basis(overlaps, counts, n_active - k + 2)


def tuple_hard_errors(B: Tensor, candidates: Tensor, n_hard: int, n_active: int, *,
                      Bt: Tensor | None = None) -> dict[str, Tensor]:
    """{SOURCES[1]: worst-case |error| of the first n_hard candidates (control), SOURCES[2]: of the
    n_hard with the fewest |N_T|}, each (n_hard,) float64, by ``worst_case_tuples``."""
    k = candidates.shape[1]
    Bt = _features_first(B, Bt)
    out = {}
    for source, tuples in [(SOURCES[1], candidates[:n_hard]),
                           (SOURCES[2], hard_tuples(B, candidates, n_hard, Bt=Bt))]:
        _, overlaps, counts = tuple_partners(B, tuples, max(1, n_active - k + 1), Bt=Bt)
        out[source] = worst_case_tuples(overlaps, counts, n_active, k)
    return out
