"""k-input ANDs and small boolean functions in one ReLU layer (Hänni, Mendel, Vaintrob, Chan 2024;
spec section 4). Builds on `toysup.uand`.

k-input AND: the U-AND weights B ~ Bernoulli(p) with p = (K/d)^(1/k), bias -(k-1),
    a = ReLU(B x - (k-1)),   y_T = mean of a over N_T = {n : B_ni = 1 for all i in T},  |N_T| ~ Bin(d, p^k).
A neuron of N_T with j of the k features on and n ~ Bin(s-j, p) other active features outputs
ReLU(j + n - (k-1)); so the error is (s-k)p when all k are on and (s-k+1)p when k-1 are on: it
falls like p ~ d^(-1/k).

Small boolean functions: every g: {0,1}^k -> {0,1} with g(0) = 0 has the multilinear (Möbius)
expansion g(x) = sum_{T != {}} c_T prod_{i in T} x_i, c_T = sum_{U subset T} (-1)^{|T|-|U|} g(1_U).
A layer with one pool per AND size j = 1..k reads g off linearly: y_g = sum_T c_T y_T, with error
e_g = sum_T c_T e_T, so |e_g| <= sum_T |c_T| |e_T|. Size-1 "ANDs" are copy units: bias 0, clipped,
clip(z) = ReLU(z) - ReLU(z - 1) (two ReLUs per unit), so y_i = 1 exactly when f_i is on.
Examples: OR = x1 + x2 - x1 x2, XOR = x1 + x2 - 2 x1 x2.

Paper -> code: k -> k, s -> n_active, K -> n_shared, m -> n_features, d -> d_hidden (per pool).
Shapes: tuples (T, P, k) long; pool activations (T, d) float32; read-offs (T, P).
"""
import itertools
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from toysup import checks
from toysup.cis import uand

BoolFn = Callable[..., int]
FUNCTIONS: dict[str, tuple[int, BoolFn]] = {
    "AND": (2, lambda a, b: a & b),
    "OR": (2, lambda a, b: a | b),
    "XOR": (2, lambda a, b: a ^ b),
    "MAJ3": (3, lambda a, b, c: int(a + b + c >= 2)),
    "PARITY3": (3, lambda a, b, c: a ^ b ^ c),
}


# ---------------------------------------------------------------------------------------- theory
def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")


def and_error_theory(n_active: int, size: int, n_on: int, connect_prob: float,
                     *, clip: bool = False) -> float:
    """Exact mean signed error of the read-off of an AND of `size` features of which n_on are on.

    A neuron reading all `size` features also reads each of the s - n_on other active features with
    probability p: n ~ Bin(s - n_on, p), output ReLU(n_on + n - (size-1)) (or, for clipped copy
    units of size 1, min(1, n_on + n)); the target is 1 iff n_on == size."""
    checks.positive_int("n_active", n_active)
    checks.positive_int("size", size)
    if not 0 <= n_on <= min(size, n_active):
        raise ValueError(f"n_on must lie in [0, min(size, n_active)] = [0, {min(size, n_active)}],"
                         f" got {n_on}")
    p = checks.unit_interval("connect_prob", connect_prob)
    others = n_active - n_on
    n = np.arange(others + 1)
    pmf = np.array([math.comb(others, i) for i in n]) * p ** n * (1 - p) ** (others - n)
    z = n_on + n
    out = np.minimum(z, 1) if clip else np.maximum(z - (size - 1), 0)
    return float((pmf * out).sum() - (n_on == size))


def k_and_theory(n_active: int, k: int, connect_prob: float) -> dict[int, float]:
    """Mean signed read-off error of a k-input AND by number of inputs on: {j: error}, j = 0..k.

    j = k gives (s-k) p and j = k-1 gives (s-k+1) p exactly."""
    _check_k(k)
    if n_active < k:
        raise ValueError(f"n_active must be >= k={k} so that all-on tuples exist, got {n_active}")
    return {j: and_error_theory(n_active, k, j, connect_prob) for j in range(k + 1)}


def mobius_coefficients(g: BoolFn, k: int) -> dict[tuple[int, ...], int]:
    """Multilinear coefficients {T: c_T} of g: {0,1}^k -> {0,1}, T a sorted tuple of positions.

    Raises ValueError if g(0, ..., 0) != 0 (such a g breaks sparsity and needs a constant term)."""
    checks.positive_int("k", k)
    if g(*([0] * k)) != 0:
        raise ValueError("g must satisfy g(0, ..., 0) = 0 (NOT-like functions break sparsity)")
    coeffs = {}
    for size in range(1, k + 1):
        for T in itertools.combinations(range(k), size):
            c = 0
            for r in range(size + 1):
                for U in itertools.combinations(T, r):
                    bits = [1 if i in U else 0 for i in range(k)]
                    c += (-1) ** (size - r) * int(g(*bits))
            if c != 0:
                coeffs[T] = c
    return coeffs


def multilinear_form(name: str) -> str:
    """The expansion of FUNCTIONS[name] as text, e.g. 'OR = +1·x1 +1·x2 -1·x1x2'."""
    if name not in FUNCTIONS:
        raise ValueError(f"name must be one of {sorted(FUNCTIONS)}, got {name!r}")
    k, g = FUNCTIONS[name]
    terms = " ".join(f"{c:+d}·" + "".join(f"x{i + 1}" for i in T)
                     for T, c in mobius_coefficients(g, k).items())
    return f"{name} = {terms}"


# ---------------------------------------------------------------------------------------- sampling
def sample_tuples(active: Tensor, inactive: Tensor, k: int, n_per_class: int,
                  generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """k-tuples of distinct features per input, n_per_class for each number on j = 0..k.

    active (T, s), inactive (T, n_pool >= k) -> (tuples (T, (k+1) n_per_class, k), n_on (P,) long).
    The on features of a tuple are a random j-subset of the active set, the off ones a random
    (k-j)-subset of the input's pool of off features, and the k positions are shuffled."""
    T, s = active.shape
    if inactive.shape[1] < k:
        raise ValueError(f"inactive must hold at least k={k} columns, got {inactive.shape[1]}")
    parts, n_on = [], []
    for j in range(k + 1):
        if j > s:
            continue
        on = active.gather(1, torch.rand(T, n_per_class, s, generator=generator)
                           .argsort(-1)[..., :j].reshape(T, -1)).reshape(T, n_per_class, j)
        pick = torch.rand(T, n_per_class, inactive.shape[1], generator=generator).argsort(-1)
        off = inactive.gather(1, pick[..., :k - j].reshape(T, -1)).reshape(T, n_per_class, k - j)
        tup = torch.cat([on, off], dim=2)
        shuffle = torch.rand(T, n_per_class, k, generator=generator).argsort(-1)
        parts.append(tup.gather(2, shuffle))
        n_on += [j] * n_per_class
    return torch.cat(parts, dim=1), torch.tensor(n_on)


def _check_layer(n_features: int, d_hidden: int, n_active: int, k: int) -> None:
    checks.positive_int("n_features", n_features)
    checks.positive_int("d_hidden", d_hidden)
    checks.positive_int("n_active", n_active, maximum=n_features)
    if n_active < k:
        raise ValueError(f"n_active must be >= k={k} so that all-on tuples exist, got {n_active}")


def _inputs(n_features: int, n_active: int, n_inputs: int, n_pool: int,
            seed_inputs: int) -> tuple[Tensor, Tensor, torch.Generator]:
    if n_active + n_pool > n_features:
        raise ValueError(f"n_features={n_features} is too small: need n_active + {n_pool}")
    gen = torch.Generator().manual_seed(seed_inputs)
    drawn = uand.sample_distinct(n_inputs, n_features, n_active + n_pool, gen)
    return drawn[:, :n_active], drawn[:, n_active:], gen


# ---------------------------------------------------------------------------------------- k-AND
def evaluate_k_and(n_features: int, d_hidden: int, k: int, *, n_active: int = 4,
                   n_shared: float = 20, n_inputs: int = 200, n_per_class: int = 5,
                   seed_network: int = 0, seed_inputs: int = 1) -> pd.DataFrame:
    """k-input U-AND (bias -(k-1), p = (K/d)^(1/k)) on inputs with exactly s on.

    One row per evaluated tuple: input, n_on, target, count (|N_T|), readout, error."""
    _check_k(k)
    _check_layer(n_features, d_hidden, n_active, k)
    p = uand.connect_prob(n_shared, d_hidden, k)
    B = uand.connection_matrix(n_features, d_hidden, p, torch.Generator().manual_seed(seed_network))
    active, inactive, gen = _inputs(n_features, n_active, n_inputs, 2 * k, seed_inputs)
    tuples, n_on = sample_tuples(active, inactive, k, n_per_class, gen)
    act = uand.activation(uand.preactivation_basis(B, active), -(k - 1.0))
    values, counts = uand.and_readout(act, B, tuples)
    T, P = counts.shape
    table = pd.DataFrame({"input": np.repeat(np.arange(T), P),
                          "n_on": np.tile(n_on.numpy(), T),
                          "target": np.tile((n_on == k).numpy().astype(float), T),
                          "count": counts.reshape(-1).numpy(),
                          "readout": values.reshape(-1).numpy().astype(np.float64)})
    table["error"] = table["readout"] - table["target"]
    return table


def sweep_k_and(n_features: int, widths: list[int], ks: list[int], *, n_active: int = 4,
                n_shared: float = 20, n_inputs: int = 200, n_per_class: int = 5,
                network_seeds: list[int] = (0,), seed_inputs: int = 1) -> pd.DataFrame:
    """One row per (k, d, network seed, n_on): mean signed error, its standard error, mean |error|,
    q99 |error| and the closed form 'theory'. Rows with n_on = 'all' summarise every tuple, with
    theory = mean of the per-class closed forms (each class has the same number of tuples)."""
    rows = []
    for k in ks:
        for d in widths:
            p = uand.connect_prob(n_shared, d, k)
            theory = k_and_theory(n_active, k, p)
            for seed in network_seeds:
                table = evaluate_k_and(n_features, d, k, n_active=n_active, n_shared=n_shared,
                                       n_inputs=n_inputs, n_per_class=n_per_class,
                                       seed_network=seed, seed_inputs=seed_inputs)
                groups = [(j, table[table["n_on"] == j], theory[j]) for j in range(k + 1)]
                groups.append(("all", table, float(np.mean(list(theory.values())))))
                for j, g, th in groups:
                    err = g["error"]
                    rows.append({"k": k, "d": d, "seed_network": seed, "p": p, "n_on": j,
                                 "bias": float(err.mean()),
                                 "se": float(err.std(ddof=1) / math.sqrt(len(err))),
                                 "mean_abs": float(err.abs().mean()),
                                 "q99": float(err.abs().quantile(0.99)),
                                 "max_abs": float(err.abs().max()), "theory": th,
                                 "frac_empty": float((g["count"] == 0).mean())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- layer
def pool_forward(B: Tensor, active: Tensor, size: int) -> Tensor:
    """Activations of the AND pool of a given size: copy units (size 1) are clipped,
    min(1, ReLU(z)) = ReLU(z) - ReLU(z - 1); size j >= 2 uses ReLU(z - (j-1)). (T, d) float32."""
    pre = uand.preactivation_basis(B, active)
    if size == 1:
        return uand.activation(pre, 0.0) - uand.activation(pre, -1.0)
    return uand.activation(pre, -(size - 1.0))


def evaluate_functions(n_features: int, d_hidden: int, functions: list[str], *, n_active: int = 4,
                       n_shared: float = 20, n_inputs: int = 200, n_per_class: int = 5,
                       seed_network: int = 0, seed_inputs: int = 1) -> pd.DataFrame:
    """Read small boolean functions off one layer of pools: copy units and AND pools of sizes 2..k.

    Every pool has d_hidden neurons (the copy pool 2 d_hidden ReLUs) and K = n_shared neurons per
    read-off on average: p_j = (K/d)^(1/j). functions are names in FUNCTIONS, all of one arity k.
    One row per (evaluated tuple, function): input, function, pattern (bits of the tuple, e.g. '101'),
    n_on, target, readout, error, bound = sum_T |c_T| |e_T|, theory (closed-form mean error)."""
    unknown = [f for f in functions if f not in FUNCTIONS]
    if unknown or not functions:
        raise ValueError(f"functions must be a non-empty list from {sorted(FUNCTIONS)}, got {functions}")
    arities = {FUNCTIONS[f][0] for f in functions}
    if len(arities) != 1:
        raise ValueError(f"functions must share one arity, got arities {sorted(arities)}")
    (k,) = arities
    _check_layer(n_features, d_hidden, n_active, k)
    gen_net = torch.Generator().manual_seed(seed_network)
    probs = {j: uand.connect_prob(n_shared, d_hidden, j) for j in range(1, k + 1)}
    pools = {j: uand.connection_matrix(n_features, d_hidden, probs[j], gen_net) for j in probs}
    active, inactive, gen = _inputs(n_features, n_active, n_inputs, 2 * k, seed_inputs)
    tuples, n_on = sample_tuples(active, inactive, k, n_per_class, gen)
    T, P, _ = tuples.shape
    on = _membership(tuples, active)                                  # (T, P, k) bool
    reads, errs, theo = {}, {}, {}
    for j, B in pools.items():
        act = pool_forward(B, active, j)
        for subset in itertools.combinations(range(k), j):
            y, _ = uand.and_readout(act, B, tuples[..., list(subset)])
            truth = on[..., list(subset)].all(-1).float()
            reads[subset], errs[subset] = y, y - truth
            per_count = torch.tensor([and_error_theory(n_active, j, c, probs[j], clip=(j == 1))
                                      for c in range(j + 1)], dtype=torch.float64)
            theo[subset] = per_count[on[..., list(subset)].sum(-1)]
    pattern = ["".join(str(int(b)) for b in row) for row in on.reshape(-1, k).tolist()]
    frames = []
    for name in functions:
        g = FUNCTIONS[name][1]
        coeffs = mobius_coefficients(g, k)
        value = sum(c * reads[T_] for T_, c in coeffs.items())
        bound = sum(abs(c) * errs[T_].abs() for T_, c in coeffs.items())
        theory = sum(c * theo[T_] for T_, c in coeffs.items())
        target = torch.tensor([[g(*bits) for bits in row] for row in on.int().tolist()],
                              dtype=torch.float32)
        frames.append(pd.DataFrame({
            "input": np.repeat(np.arange(T), P), "function": name, "pattern": pattern,
            "n_on": on.sum(-1).reshape(-1).numpy(), "target": target.reshape(-1).numpy(),
            "readout": value.reshape(-1).numpy().astype(np.float64),
            "bound": bound.reshape(-1).numpy().astype(np.float64),
            "theory": theory.reshape(-1).numpy()}))
    table = pd.concat(frames, ignore_index=True)
    table["error"] = table["readout"] - table["target"]
    return table


def function_table(table: pd.DataFrame) -> pd.DataFrame:
    """``evaluate_functions`` rows summarised per (function, pattern): n, target, mean_error, theory,
    q99_abs and max_abs of |error|, mean_bound."""
    return table.groupby(["function", "pattern"]).agg(
        n=("error", "size"), target=("target", "first"), mean_error=("error", "mean"),
        theory=("theory", "mean"), q99_abs=("error", lambda e: e.abs().quantile(0.99)),
        max_abs=("error", lambda e: e.abs().max()), mean_bound=("bound", "mean"))


def _membership(tuples: Tensor, active: Tensor) -> Tensor:
    """on[t, q, i] = tuples[t, q, i] is one of the active features of input t: (T, P, k) bool."""
    return (tuples[..., None] == active[:, None, None, :]).any(-1)


def explicit_layer(pools: dict[int, Tensor]) -> tuple[Tensor, Tensor]:
    """The layer as an explicit ReLU MLP (small sizes only): (W (n_relu, m), bias (n_relu,)).

    Rows: copy pool twice (biases 0 and -1, the two ReLUs of a clipped unit), then the AND pool of
    each size j >= 2 with bias -(j-1)."""
    W, bias = [], []
    for j, B in sorted(pools.items()):
        reps = [(0.0, B), (-1.0, B)] if j == 1 else [(-(j - 1.0), B)]
        for b, block in reps:
            W.append(block.float())
            bias.append(torch.full((block.shape[0],), b))
    return torch.cat(W), torch.cat(bias)
