"""Universal AND (U-AND): one ReLU layer that computes every pairwise AND of m sparse boolean features
(Hänni, Mendel, Vaintrob, Chan 2024, the U-AND construction; spec sections 2-3).

Network (basis-aligned inputs, construction U1):
    B in {0,1}^{d x m},  B_ki ~ Bernoulli(p) i.i.d.,   a(x) = ReLU(B x - 1),   x = b in {0,1}^m
Read-off of f_i AND f_j: the mean over the neurons that read both features,
    N_ij = {k : B_ki = B_kj = 1},  y_ij = (1/|N_ij|) sum_{k in N_ij} a_k,   |N_ij| ~ Bin(d, p^2),
so r_ij = (B_:i * B_:j) / <B_:i, B_:j> and K = p^2 d is the read-off averaging size. We take
p = sqrt(K / d) with a constant K (the paper's p = log^2 m / sqrt d is 1 at book sizes).

Inputs in superposition (construction U2): x = Phi b in R^{d0}, Phi (d0, m) with i.i.d. random unit
columns, first-layer weights W = B Phi^T, the same bias -1 and the same read-offs. The pre-activation
is |S_k & A| - 1 + xi_k with Var(xi_k) ~ p m s / d0.

k-input ANDs use the same weights with p = (K/d)^(1/k), bias -(k-1), and read-offs averaged over the
neurons that read all k features (`and_readout` takes tuples of any size k).

Paper -> code: m -> n_features, d -> d_hidden, d0 -> d_input, p -> connect_prob, s -> n_active,
K -> n_shared, B -> B, Phi -> Phi.
Shapes: B (d_hidden, n_features) bool; Phi (d_input, n_features) float32; active (T, s) long indices
of the on features of T inputs; pre-activations and activations (T, d_hidden) float32; tuples
(T, P, k) long, P tuples of k features per input; read-offs and counts (T, P).

Nothing here builds an m x m matrix or the read-off vectors of all pairs: pre-activations are
B[:, active].sum (basis) or (x^T Phi) B^T (superposed), and read-offs are computed only for the
sampled tuples, from masks B[:, i] & B[:, j] of shape (d, T, P). B is U < p for keys U ~ U[0, 1)
(``connection_keys``), so networks of several densities can share one draw. Each column of Phi comes
from its own generator (``embedding_columns``), so any subset of features can be embedded alone and
``embedding_gram`` builds Phi^T Phi_F in chunks of features without ever holding Phi whole
(``toysup.cis.epsilon`` uses that for the worst-case error and the search over d).
"""
import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from toysup import checks

CASES = ("both on", "one on", "none on")
_CHUNK = 1 << 24          # elements per temporary block (64 MB in float32)


# ---------------------------------------------------------------------------------------- parameters
def connect_prob(n_shared: float, d_hidden: int, k: int = 2) -> float:
    """p = (K / d)^(1/k): the connection probability that gives K neurons per k-tuple on average."""
    checks.positive_int("d_hidden", d_hidden)
    _check_arity(k, minimum=1)
    if not (isinstance(n_shared, (int, float)) and 0 < n_shared <= d_hidden):
        raise ValueError(f"n_shared must lie in (0, d_hidden={d_hidden}], got {n_shared!r}")
    return float((n_shared / d_hidden) ** (1.0 / k))


def readoff_bias_theory(n_active: int, connect_prob: float) -> dict[str, float]:
    """Closed-form mean signed read-off error of a pair, per case, for exactly s active features.

    A neuron in N_ij sees n other active features, n ~ Bin(s - #on(i,j), p), so
        both on: E[1 + n] - 1 = (s-2) p;   one on: E[n] = (s-1) p;
        none on: E[ReLU(n - 1)] = s p - 1 + (1-p)^s  (= C(s,2) p^2 + O(p^3)).
    """
    checks.positive_int("n_active", n_active)
    p = checks.unit_interval("connect_prob", connect_prob)
    s = n_active
    return {"both on": (s - 2) * p, "one on": (s - 1) * p, "none on": s * p - 1 + (1 - p) ** s}


def interference_std_theory(n_features: int, d_input: int, n_active: int,
                            connect_prob: float) -> float:
    """sigma_xi = sqrt(p m s / d0): std of the pre-activation interference with superposed inputs."""
    return math.sqrt(connect_prob * n_features * n_active / d_input)


def _check_arity(k: int, *, minimum: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < minimum:
        raise ValueError(f"k must be an integer >= {minimum}, got {k!r}")


def _check_sizes(n_features: int, d_hidden: int, n_active: int) -> None:
    checks.positive_int("n_features", n_features)
    checks.positive_int("d_hidden", d_hidden)
    checks.positive_int("n_active", n_active, maximum=n_features)


# ---------------------------------------------------------------------------------------- sampling
def sample_distinct(n_inputs: int, n_features: int, n_draw: int, generator: torch.Generator,
                    *, largest: bool = True) -> Tensor:
    """n_draw distinct feature indices per input, uniformly: (n_inputs, n_draw) long.

    The indices of the n_draw largest (``largest=False``: smallest) of m i.i.d. U[0, 1) keys per
    input, drawn in blocks of rows. Either end gives the same distribution; ``sample_exactly_s``
    takes the smallest. Used for the active set (exactly s on) and, in the same draw, for off
    features to pair with (sorted by key, so the first s are the active ones)."""
    checks.positive_int("n_inputs", n_inputs)
    checks.positive_int("n_features", n_features)
    checks.positive_int("n_draw", n_draw, maximum=n_features)
    out = torch.empty(n_inputs, n_draw, dtype=torch.long)
    rows = max(1, _CHUNK // n_features)
    for start in range(0, n_inputs, rows):
        keys = torch.rand(min(rows, n_inputs - start), n_features, generator=generator)
        out[start:start + rows] = keys.topk(n_draw, dim=1, largest=largest).indices
    return out


def sample_exactly_s(n_inputs: int, n_features: int, n_active: int,
                     generator: torch.Generator) -> Tensor:
    """Boolean inputs with exactly s of m features on, uniformly: (T, m) float32 in {0, 1}.

    The one-hot form of ``sample_distinct`` (smallest keys), for the explicit networks of
    ``and_mlp`` and ``deep_circuits``."""
    checks.positive_int("n_features", n_features)
    checks.positive_int("n_active", n_active, maximum=n_features)
    idx = sample_distinct(n_inputs, n_features, n_active, generator, largest=False)
    return torch.zeros(n_inputs, n_features).scatter_(1, idx, 1.0)


def _key_blocks(n_features: int, d_hidden: int, generator: torch.Generator):
    """(start, stop, U[start:stop]) blocks of the (d_hidden, n_features) i.i.d. U[0, 1) keys."""
    rows = max(1, _CHUNK // n_features)
    for start in range(0, d_hidden, rows):
        stop = min(start + rows, d_hidden)
        yield start, stop, torch.rand(stop - start, n_features, generator=generator)


def connection_keys(n_features: int, d_hidden: int, generator: torch.Generator) -> Tensor:
    """U (d_hidden, n_features) float32 i.i.d. U[0, 1): ``U < p`` is ``connection_matrix`` for every
    p at once (the same draws from the same generator state), so networks of different densities
    drawn from one U are nested -- common random numbers for a search over p."""
    checks.positive_int("n_features", n_features)
    checks.positive_int("d_hidden", d_hidden)
    U = torch.empty(d_hidden, n_features)
    for start, stop, block in _key_blocks(n_features, d_hidden, generator):
        U[start:stop] = block
    return U


def connection_matrix(n_features: int, d_hidden: int, connect_prob: float,
                      generator: torch.Generator) -> Tensor:
    """B (d_hidden, n_features) bool with i.i.d. Bernoulli(connect_prob) entries (drawn in blocks)."""
    checks.positive_int("n_features", n_features)
    checks.positive_int("d_hidden", d_hidden)
    p = checks.unit_interval("connect_prob", connect_prob)
    B = torch.empty(d_hidden, n_features, dtype=torch.bool)
    for start, stop, block in _key_blocks(n_features, d_hidden, generator):
        B[start:stop] = block < p
    return B


def _feature_seeds(features: Tensor, seed: int) -> list[int]:
    """One 32-bit generator seed per feature (torch keeps 32 bits of a seed): a base drawn from
    (seed, "embedding") plus the feature index, so two features of one embedding never collide."""
    base = int(np.random.SeedSequence([checks.seed("seed", seed), 0xE3B]).generate_state(1)[0])
    return [(base + f) % 2 ** 32 for f in features.tolist()]


def embedding_columns(features: Tensor, d_input: int, seed: int) -> Tensor:
    """phi_f of the given feature indices (F,) long: (d_input, F) float32 unit columns.

    Column f is an i.i.d. Gaussian vector from its own generator (seeded from (seed, f)),
    normalised, so any subset of Phi is drawn alone and equals the same columns of the whole Phi."""
    checks.positive_int("d_input", d_input)
    gen = torch.Generator()
    out = torch.empty(features.numel(), d_input)
    for row, s in enumerate(_feature_seeds(features.reshape(-1), seed)):
        torch.randn(d_input, generator=gen.manual_seed(s), out=out[row])
    out /= out.norm(dim=1, keepdim=True)
    return out.T.contiguous()


def feature_embedding(n_features: int, d_input: int, seed: int) -> Tensor:
    """Phi (d_input, n_features) float32 whole: ``embedding_columns`` of every feature (explicit
    networks and small sizes; ``embedding_gram`` never forms it)."""
    checks.positive_int("n_features", n_features)
    return embedding_columns(torch.arange(n_features), d_input, seed)


def embedding_gram(features: Tensor, n_features: int, d_input: int, seed: int) -> Tensor:
    """Phi^T Phi_F (n_features, F) float32: the overlaps <phi_i, phi_f> of every feature i with the
    given ones, built over chunks of features, so Phi is never held whole (the largest temporary
    is one chunk of columns, 64 MB)."""
    checks.positive_int("n_features", n_features)
    Phi_F = embedding_columns(features, d_input, seed)
    gram = torch.empty(n_features, Phi_F.shape[1])
    cols = max(1, _CHUNK // d_input)
    for start in range(0, n_features, cols):
        chunk = embedding_columns(torch.arange(start, min(start + cols, n_features)), d_input, seed)
        gram[start:start + cols] = chunk.T @ Phi_F
    return gram


# ---------------------------------------------------------------------------------------- forward
def preactivation_basis(B: Tensor, active: Tensor) -> Tensor:
    """B x for basis-aligned x = sum_{i in A} e_i: (T, d) float32, = |S_k & A| for every neuron."""
    T, s = active.shape
    cols = B.index_select(1, active.reshape(-1))                     # (d, T*s) bool
    return cols.reshape(B.shape[0], T, s).sum(dim=2, dtype=torch.float32).T.contiguous()


def embed(Phi: Tensor, active: Tensor) -> Tensor:
    """Superposed inputs x = Phi b = sum_{i in A} phi_i: (T, d_input) float32."""
    T, s = active.shape
    return Phi.index_select(1, active.reshape(-1)).reshape(Phi.shape[0], T, s).sum(2).T.contiguous()


def preactivation_superposed(B: Tensor, Phi: Tensor, x: Tensor) -> Tensor:
    """W x with W = B Phi^T, computed as (x^T Phi) B^T: (T, d) float32 (``preactivation_from_overlaps``
    of x^T Phi). x (T, d_input). Neither W nor Phi^T Phi is formed."""
    return preactivation_from_overlaps(B, x @ Phi)


def preactivation_from_overlaps(B: Tensor, overlaps: Tensor) -> Tensor:
    """W x = B (Phi^T x) from the feature overlaps <phi_i, x>: overlaps (T, m) -> (T, d) float32,
    in blocks of neurons (the largest temporary is a block of B in float32)."""
    d, m = B.shape
    pre = torch.empty(overlaps.shape[0], d, dtype=torch.float32, device=overlaps.device)
    rows = max(1, _CHUNK // m)
    for start in range(0, d, rows):
        pre[:, start:start + rows] = overlaps @ B[start:start + rows].to(torch.float32).T
    return pre


def activation(pre: Tensor, bias: float) -> Tensor:
    """a = ReLU(pre + bias); U-AND uses bias -1, a k-input AND bias -(k-1)."""
    return torch.relu(pre + bias)


def and_readout(act: Tensor, B: Tensor, tuples: Tensor, *, Bt: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
    """Mean activation over the neurons that read every feature of each tuple.

    act (T, d), B (d, m) bool, tuples (T, P, k) long -> (values (T, P) float32, counts (T, P) long).
    values = <r, act> with r = prod_i B[:, i] / |N|; a tuple with |N| = 0 gets value 0 (count 0
    flags it; the division uses max(count, 1)). Bt: B^T contiguous (m, d), if already at hand; the
    masks are built from its rows, each contiguous in d."""
    T, P, k = tuples.shape
    d = B.shape[0]
    Bt = B.T.contiguous() if Bt is None else Bt
    values = torch.empty(T, P, dtype=torch.float32, device=act.device)
    counts = torch.empty(T, P, dtype=torch.long, device=act.device)
    rows = max(1, _CHUNK // max(1, d * P))
    for start in range(0, T, rows):
        tup = tuples[start:start + rows]
        t = tup.shape[0]
        mask = Bt.index_select(0, tup[..., 0].reshape(-1))
        for j in range(1, k):
            mask &= Bt.index_select(0, tup[..., j].reshape(-1))
        mask = mask.reshape(t, P, d)                                 # (t, P, d) bool
        cnt = mask.sum(2)
        tot = torch.einsum("tpd,td->tp", mask.to(torch.float32), act[start:start + rows])
        values[start:start + rows] = tot / cnt.clamp(min=1)
        counts[start:start + rows] = cnt
    return values, counts


# ---------------------------------------------------------------------------------------- pair sets
def sample_pairs(active: Tensor, inactive: Tensor, n_one: int, n_none: int,
                 generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Pairs to evaluate per input: all C(s,2) both-on pairs, n_one one-on and n_none none-on pairs.

    active (T, s), inactive (T, >= n_one + 2 n_none) distinct off features ->
    (pairs (T, P, 2) long, case (P,) long: 0 both on, 1 one on, 2 none on)."""
    T, s = active.shape
    if inactive.shape[1] < n_one + 2 * n_none:
        raise ValueError(f"inactive must hold >= n_one + 2 n_none = {n_one + 2 * n_none} columns")
    iu = torch.triu_indices(s, s, offset=1)
    both = torch.stack([active[:, iu[0]], active[:, iu[1]]], dim=2)  # (T, C(s,2), 2)
    pick = torch.randint(0, s, (T, n_one), generator=generator)
    one = torch.stack([active.gather(1, pick), inactive[:, :n_one]], dim=2)
    none = inactive[:, n_one:n_one + 2 * n_none].reshape(T, n_none, 2)
    pairs = torch.cat([both, one, none], dim=1)
    case = torch.cat([torch.zeros(both.shape[1]), torch.ones(n_one), torch.full((n_none,), 2.0)])
    return pairs, case.long()


def draw_inputs(n_features: int, n_active: int, n_inputs: int, n_one: int, n_none: int,
                seed_inputs: int) -> tuple[Tensor, Tensor, Tensor]:
    """The random sample every U-AND score uses: T inputs with exactly s features on and the pairs
    of ``sample_pairs`` per input, from seed_inputs -> (active (T, s), pairs (T, P, 2), case (P,))."""
    if n_active < 2:
        raise ValueError(f"n_active must be >= 2 so that both-on pairs exist, got {n_active}")
    n_draw = n_active + n_one + 2 * n_none
    if n_draw > n_features:
        raise ValueError(f"n_features={n_features} is too small for n_active + n_one + 2 n_none"
                         f" = {n_draw} distinct features per input")
    gen = torch.Generator().manual_seed(seed_inputs)
    drawn = sample_distinct(n_inputs, n_features, n_draw, gen)
    active, inactive = drawn[:, :n_active], drawn[:, n_active:]
    pairs, case = sample_pairs(active, inactive, n_one, n_none, gen)
    return active, pairs, case


def _pair_table(values: dict[str, Tensor], counts: Tensor, case: Tensor) -> pd.DataFrame:
    T, P = counts.shape
    case_name = np.array(CASES)[case.numpy()]
    table = {"input": np.repeat(np.arange(T), P), "case": np.tile(case_name, T),
             "target": np.tile((case == 0).numpy().astype(float), T),
             "count": counts.reshape(-1).cpu().numpy()}
    for name, v in values.items():
        table[name] = v.reshape(-1).cpu().numpy().astype(np.float64)
    return pd.DataFrame(table)


# ---------------------------------------------------------------------------------------- U1
def evaluate_basis(n_features: int, d_hidden: int, *, n_active: int = 3, n_shared: float = 30,
                   n_inputs: int = 200, n_one: int = 5, n_none: int = 5, seed_network: int = 0,
                   seed_inputs: int = 1, device: str = "cpu") -> pd.DataFrame:
    """Construction U1 on inputs with exactly s features on; one row per evaluated pair.

    Columns: input, case ('both on' / 'one on' / 'none on'), target (f_i AND f_j), count (|N_ij|),
    readout (y_ij), error (y_ij - target). B is drawn from seed_network, inputs and pairs from
    seed_inputs."""
    _check_sizes(n_features, d_hidden, n_active)
    dev = checks.device(device)
    p = connect_prob(n_shared, d_hidden)
    B = connection_matrix(n_features, d_hidden, p, torch.Generator().manual_seed(seed_network))
    active, pairs, case = draw_inputs(n_features, n_active, n_inputs, n_one, n_none, seed_inputs)
    B, active, pairs = B.to(dev), active.to(dev), pairs.to(dev)
    act = activation(preactivation_basis(B, active), -1.0)
    values, counts = and_readout(act, B, pairs)
    table = _pair_table({"readout": values}, counts, case)
    table["error"] = table["readout"] - table["target"]
    return table


def summarize_errors(table: pd.DataFrame, column: str = "error") -> dict[str, float]:
    """Worst-case and quantile summary of |column| (never MSE alone) plus the empty-pair fraction."""
    err = table[column].abs().to_numpy()
    return {"mean_abs": float(err.mean()), "q99": float(np.quantile(err, 0.99)),
            "max_abs": float(err.max()), "frac_empty": float((table["count"] == 0).mean())}


def sweep_basis(n_features: list[int], widths: list[int], *, n_active: int = 3,
                n_shared: float = 30, n_inputs: int = 200, n_one: int = 5, n_none: int = 5,
                network_seeds: list[int] = (0,), seed_inputs: int = 1,
                device: str = "cpu") -> pd.DataFrame:
    """U1 over a grid: one row per (m, d, network seed) with mean/q99/max |error|, the empty-pair
    fraction, the closed-form mean |error| ('theory_mean_abs'), and per case the mean signed error
    ('bias_<case>') beside its closed form ('theory_<case>') and its standard error ('se_<case>')."""
    rows = []
    for m in n_features:
        for d in widths:
            p = connect_prob(n_shared, d)
            theory = readoff_bias_theory(n_active, p)
            for seed in network_seeds:
                table = evaluate_basis(m, d, n_active=n_active, n_shared=n_shared,
                                       n_inputs=n_inputs, n_one=n_one, n_none=n_none,
                                       seed_network=seed, seed_inputs=seed_inputs, device=device)
                row = {"m": m, "d": d, "seed_network": seed, "p": p, **summarize_errors(table),
                       "theory_mean_abs": mean_abs_error_theory(n_active, p, n_one, n_none)}
                for case in CASES:
                    err = table.loc[table["case"] == case, "error"]
                    key = case.replace(" ", "_")
                    row[f"bias_{key}"] = float(err.mean())
                    row[f"se_{key}"] = float(err.std(ddof=1) / math.sqrt(len(err)))
                    row[f"theory_{key}"] = theory[case]
                rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- U2
def evaluate_superposed(n_features: int, d_hidden: int, *, d_input: int | None = None,
                        n_active: int = 2, n_shared: float = 25, n_inputs: int = 80,
                        n_one: int = 5, n_none: int = 5, seed_network: int = 0,
                        seed_inputs: int = 1, device: str = "cpu") -> tuple[pd.DataFrame, float]:
    """Construction U2 beside U1 with the same B and the same inputs.

    Returns (pairs, sigma_meas): one row per evaluated pair with readout_sup, readout_basis,
    error_sup = readout_sup - target, error_basis, excess = readout_sup - readout_basis;
    sigma_meas = std(pre_sup - pre_basis) over all inputs and neurons. d_input defaults to d."""
    _check_sizes(n_features, d_hidden, n_active)
    d_input = d_hidden if d_input is None else checks.positive_int("d_input", d_input)
    dev = checks.device(device)
    p = connect_prob(n_shared, d_hidden)
    B = connection_matrix(n_features, d_hidden, p, torch.Generator().manual_seed(seed_network))
    Phi = feature_embedding(n_features, d_input, seed_network)
    active, pairs, case = draw_inputs(n_features, n_active, n_inputs, n_one, n_none, seed_inputs)
    B, Phi, active, pairs = B.to(dev), Phi.to(dev), active.to(dev), pairs.to(dev)
    pre_basis = preactivation_basis(B, active)
    pre_sup = preactivation_superposed(B, Phi, embed(Phi, active))
    sigma = float((pre_sup - pre_basis).double().std())
    del Phi
    y_sup, counts = and_readout(activation(pre_sup, -1.0), B, pairs)
    y_basis, _ = and_readout(activation(pre_basis, -1.0), B, pairs)
    table = _pair_table({"readout_sup": y_sup, "readout_basis": y_basis}, counts, case)
    table["error_sup"] = table["readout_sup"] - table["target"]
    table["error_basis"] = table["readout_basis"] - table["target"]
    table["excess"] = table["readout_sup"] - table["readout_basis"]
    return table, sigma


def sweep_superposed(n_features: list[int], widths: list[int], *, n_active: int = 2,
                     n_shared: float = 25, n_inputs: int = 80, n_one: int = 5, n_none: int = 5,
                     network_seeds: list[int] = (0,), seed_inputs: int = 1,
                     device: str = "cpu") -> pd.DataFrame:
    """U2 over a grid with d0 = d: one row per (m, d, network seed).

    Columns: sigma_meas, sigma_theory = sqrt(p m s / d); excess_mean, excess_q99, excess_max
    (|y_sup - y_basis|); total_mean, total_q99, total_max (|y_sup - target|); basis_mean,
    basis_q99 (U1 on the same pairs); excess_one_on (mean |excess| of one-on pairs);
    frac_empty."""
    rows = []
    for m in n_features:
        for d in widths:
            p = connect_prob(n_shared, d)
            for seed in network_seeds:
                table, sigma = evaluate_superposed(
                    m, d, n_active=n_active, n_shared=n_shared, n_inputs=n_inputs, n_one=n_one,
                    n_none=n_none, seed_network=seed, seed_inputs=seed_inputs, device=device)
                exc, tot, bas = (summarize_errors(table, c)
                                 for c in ("excess", "error_sup", "error_basis"))
                one = table["case"] == "one on"
                rows.append({
                    "m": m, "d": d, "seed_network": seed, "p": p, "sigma_meas": sigma,
                    "sigma_theory": interference_std_theory(m, d, n_active, p),
                    "excess_mean": exc["mean_abs"], "excess_q99": exc["q99"],
                    "excess_max": exc["max_abs"], "total_mean": tot["mean_abs"],
                    "total_q99": tot["q99"], "total_max": tot["max_abs"],
                    "basis_mean": bas["mean_abs"], "basis_q99": bas["q99"],
                    "excess_one_on": float(table.loc[one, "excess"].abs().mean()),
                    "frac_empty": exc["frac_empty"]})
    return pd.DataFrame(rows)


def neurons_needed(widths, errors, target: float) -> float:
    """Smallest width d at which a decreasing error curve reaches ``target``, by log-log
    interpolation between grid points (sorted by d first).

    Returns widths[0] if the curve starts at or below the target, and inf if no width on the grid
    reaches it (more neurons than the grid holds: compares as "needs at least any d")."""
    d = np.asarray(widths, dtype=float)
    v = np.asarray(errors, dtype=float)
    if not target > 0:
        raise ValueError(f"target must be > 0, got {target!r}")
    order = np.argsort(d)
    d, v = d[order], v[order]
    below = np.nonzero(v <= target)[0]
    if below.size == 0:
        return float("inf")
    j = int(below[0])
    if j == 0:
        return float(d[0])
    x0, x1, y0, y1 = np.log(d[j - 1]), np.log(d[j]), np.log(v[j - 1]), np.log(v[j])
    return float(np.exp(x0 + (np.log(target) - y0) * (x1 - x0) / (y1 - y0)))


def neurons_needed_by_m(summary: pd.DataFrame, column: str, target: float) -> pd.Series:
    """d*(m): ``neurons_needed`` of ``column`` against d, for every m of a sweep summary (columns
    m, d, column). A Series indexed by m, holding only the m whose curve reaches the target."""
    needed = pd.Series({m: neurons_needed(rows["d"], rows[column], target)
                        for m, rows in summary.groupby("m")}, name=column, dtype=float)
    return needed[np.isfinite(needed)]


def neurons_needed_theory(n_features, n_active: int, n_shared: float, sigma_target: float):
    """d*(m) = (s sqrt(K) m / sigma*^2)^(2/3): the width at which sqrt(p m s / d) = sigma* with
    p = sqrt(K/d) and d0 = d (the m^(2/3) law)."""
    m = np.asarray(n_features, dtype=float)
    return (n_active * math.sqrt(n_shared) * m / sigma_target ** 2) ** (2.0 / 3.0)


def mean_abs_error_theory(n_active: int, connect_prob: float, n_one: int, n_none: int) -> float:
    """Mean |error| over the evaluated pairs of `evaluate_basis` (C(s,2) both-on, n_one one-on,
    n_none none-on per input). Every U1 error is >= 0 (a ReLU output is >= 0 and a both-on neuron
    outputs 1 + n >= 1), so the mean |error| is the pair-weighted mean of the closed-form biases."""
    th = readoff_bias_theory(n_active, connect_prob)
    n_both = math.comb(n_active, 2)
    total = n_both * th["both on"] + n_one * th["one on"] + n_none * th["none on"]
    return total / (n_both + n_one + n_none)
