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
from scipy import special
from torch import Tensor

from toysup import checks
from toysup.cis import epsilon, uand

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


def relu_gaussian_mean(mean, std):
    """E[ReLU(mean + std Z)], Z ~ N(0, 1): mean Phi(mean/std) + std phi(mean/std); ReLU(mean) where
    std = 0. Broadcasts over arrays; returns an ndarray (float64)."""
    mean, std = np.broadcast_arrays(np.asarray(mean, float), np.asarray(std, float))
    if (std < 0).any():
        raise ValueError(f"noise_std must be >= 0, got {std.min()}")
    safe = np.where(std > 0, std, 1.0)
    z = mean / safe
    smooth = mean * special.ndtr(z) + safe * np.exp(-0.5 * z ** 2) / math.sqrt(2.0 * math.pi)
    return np.where(std > 0, smooth, np.maximum(mean, 0.0))


def and_error_theory(n_active: int, size: int, n_on: int, connect_prob: float,
                     *, clip: bool = False, noise_mean=0.0, noise_std=0.0):
    """Exact mean signed error of the read-off of an AND of `size` features of which n_on are on.

    A neuron reading all `size` features also reads each of the s - n_on other active features with
    probability p: n ~ Bin(s - n_on, p), output ReLU(n_on + n - (size-1)) (or, for clipped copy
    units of size 1, min(1, n_on + n)); the target is 1 iff n_on == size.

    noise_mean, noise_std (scalars or arrays, broadcast): a Gaussian term xi ~ N(noise_mean,
    noise_std^2) added to every pre-activation, ReLU(n_on + n + xi - (size-1)) (``relu_gaussian_mean``):
    the interference of inputs in superposition (mean 0, std sqrt(p m s / d0)) or, in a stacked layer,
    the read-off errors of the layer below (spec §4.3). Returns a float for scalar noise, else an
    array of that shape."""
    checks.positive_int("n_active", n_active)
    checks.positive_int("size", size)
    if not 0 <= n_on <= min(size, n_active):
        raise ValueError(f"n_on must lie in [0, min(size, n_active)] = [0, {min(size, n_active)}],"
                         f" got {n_on}")
    p = checks.unit_interval("connect_prob", connect_prob)
    noisy = np.any(np.asarray(noise_std) != 0) or np.any(np.asarray(noise_mean) != 0)
    if clip and noisy:
        raise ValueError("noise_mean and noise_std must be 0 for clipped copy units (clip=True)")
    others = n_active - n_on
    n = np.arange(others + 1)
    pmf = np.array([math.comb(others, i) for i in n]) * p ** n * (1 - p) ** (others - n)
    z = n_on + n
    if clip:
        out = np.minimum(z, 1)
    else:
        shape = np.broadcast(np.asarray(noise_mean), np.asarray(noise_std)).shape
        z = z.reshape((-1,) + (1,) * len(shape)) - (size - 1) + np.asarray(noise_mean, float)
        out = relu_gaussian_mean(z, noise_std)
        pmf = pmf.reshape((-1,) + (1,) * len(shape))
    value = (pmf * out).sum(0) - (n_on == size)
    return float(value) if np.ndim(value) == 0 else value


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
def _k_and_network(n_features: int, d_hidden: int, k: int, n_active: int, n_shared: float,
                   n_inputs: int, n_per_class: int, seed_network: int, seed_inputs: int):
    """B, the inputs and the tuples of one k-AND evaluation: (p, B, active, tuples, n_on)."""
    _check_k(k)
    _check_layer(n_features, d_hidden, n_active, k)
    p = uand.connect_prob(n_shared, d_hidden, k)
    B = uand.connection_matrix(n_features, d_hidden, p, torch.Generator().manual_seed(seed_network))
    active, inactive, gen = _inputs(n_features, n_active, n_inputs, 2 * k, seed_inputs)
    tuples, n_on = sample_tuples(active, inactive, k, n_per_class, gen)
    return p, B, active, tuples, n_on


def _tuple_table(values: dict[str, Tensor], counts: Tensor, n_on: Tensor, k: int) -> pd.DataFrame:
    T, P = counts.shape
    table = pd.DataFrame({"input": np.repeat(np.arange(T), P),
                          "n_on": np.tile(n_on.numpy(), T),
                          "target": np.tile((n_on == k).numpy().astype(float), T),
                          "count": counts.reshape(-1).numpy()})
    for name, v in values.items():
        table[name] = v.reshape(-1).numpy().astype(np.float64)
    return table


def evaluate_k_and(n_features: int, d_hidden: int, k: int, *, n_active: int = 4,
                   n_shared: float = 20, n_inputs: int = 200, n_per_class: int = 5,
                   seed_network: int = 0, seed_inputs: int = 1) -> pd.DataFrame:
    """k-input U-AND (bias -(k-1), p = (K/d)^(1/k)) on inputs with exactly s on.

    One row per evaluated tuple: input, n_on, target, count (|N_T|), readout, error."""
    _, B, active, tuples, n_on = _k_and_network(n_features, d_hidden, k, n_active, n_shared,
                                                n_inputs, n_per_class, seed_network, seed_inputs)
    act = uand.activation(uand.preactivation_basis(B, active), -(k - 1.0))
    values, counts = uand.and_readout(act, B, tuples)
    table = _tuple_table({"readout": values}, counts, n_on, k)
    table["error"] = table["readout"] - table["target"]
    return table


def evaluate_k_and_superposed(n_features: int, d_hidden: int, k: int, d_input: int, *,
                              n_active: int = 4, n_shared: float = 20, n_inputs: int = 200,
                              n_per_class: int = 5, seed_network: int = 0,
                              seed_inputs: int = 1) -> tuple[pd.DataFrame, float]:
    """k-input AND with inputs in superposition (U2's embedding, spec §3.1 with bias -(k-1)) beside
    the basis-aligned k-AND with the same B, inputs and tuples.

    x = Phi b with Phi (d_input, m) from ``uand.feature_embedding(m, d_input, seed_network)``,
    pre-activations B Phi^T x. Returns (tuples, sigma_meas): one row per tuple with input, n_on,
    target, count, readout_sup, readout_basis, error_sup, error_basis, excess = readout_sup -
    readout_basis; sigma_meas = std(pre_sup - pre_basis) over inputs and neurons (theory
    ``uand.interference_std_theory``)."""
    d0 = checks.positive_int("d_input", d_input)
    _, B, active, tuples, n_on = _k_and_network(n_features, d_hidden, k, n_active, n_shared,
                                                n_inputs, n_per_class, seed_network, seed_inputs)
    Phi = uand.feature_embedding(n_features, d0, seed_network)
    pre_basis = uand.preactivation_basis(B, active)
    pre_sup = uand.preactivation_superposed(B, Phi, uand.embed(Phi, active))
    sigma = float((pre_sup - pre_basis).double().std())
    y_sup, counts = uand.and_readout(uand.activation(pre_sup, -(k - 1.0)), B, tuples)
    y_basis, _ = uand.and_readout(uand.activation(pre_basis, -(k - 1.0)), B, tuples)
    table = _tuple_table({"readout_sup": y_sup, "readout_basis": y_basis}, counts, n_on, k)
    table["error_sup"] = table["readout_sup"] - table["target"]
    table["error_basis"] = table["readout_basis"] - table["target"]
    table["excess"] = table["readout_sup"] - table["readout_basis"]
    return table, sigma


def error_summary(errors) -> dict[str, float]:
    """|error| over an evaluated set: mean, q50, q99, q999, max (ε over that set, a lower bound on the
    paper's ε) and the bit-error rate 'ber' (fraction with |error| >= 1/2: wrong after rounding)."""
    e = np.abs(np.asarray(errors, dtype=np.float64)).reshape(-1)
    if e.size == 0:
        raise ValueError("errors must be non-empty")
    q50, q99, q999 = np.quantile(e, [0.5, 0.99, 0.999])
    return {"mean": float(e.mean()), "q50": float(q50), "q99": float(q99), "q999": float(q999),
            "max": float(e.max()), "ber": float((e >= 0.5).mean())}


def sweep_k_and_superposed(n_features: int, d_hidden: int, ks: list[int], d_inputs: list[int], *,
                           n_active: int = 4, n_shared: float = 20, n_inputs: int = 200,
                           n_per_class: int = 5, network_seeds: list[int] = (0,),
                           seed_inputs: int = 1) -> pd.DataFrame:
    """k-AND with superposed inputs against its basis-aligned twin, per (k, d0, seed, n_on, inputs).

    One row per (k, d_input, seed_network, n_on in 0..k or 'all', inputs in {'superposed', 'basis'})
    with p, sigma_meas, sigma_theory = sqrt(p m s / d0), bias (mean signed error), se, theory (the
    closed form: ``and_error_theory`` with noise_std = sigma_theory for 'superposed', none for
    'basis'; 'all' averages the classes) and the ``error_summary`` columns."""
    rows = []
    for k in ks:
        p = uand.connect_prob(n_shared, d_hidden, k)
        for d0 in d_inputs:
            sigma_th = uand.interference_std_theory(n_features, d0, n_active, p)
            theory = {"superposed": {j: and_error_theory(n_active, k, j, p, noise_std=sigma_th)
                                     for j in range(k + 1)},
                      "basis": k_and_theory(n_active, k, p)}
            for seed in network_seeds:
                table, sigma = evaluate_k_and_superposed(
                    n_features, d_hidden, k, d0, n_active=n_active, n_shared=n_shared,
                    n_inputs=n_inputs, n_per_class=n_per_class, seed_network=seed,
                    seed_inputs=seed_inputs)
                for inputs, column in [("superposed", "error_sup"), ("basis", "error_basis")]:
                    th = theory[inputs]
                    groups = [(j, table.loc[table["n_on"] == j, column], th[j]) for j in range(k + 1)]
                    groups.append(("all", table[column], float(np.mean(list(th.values())))))
                    for j, err, value in groups:
                        rows.append({"k": k, "d": d_hidden, "d_input": d0, "seed_network": seed,
                                     "n_on": str(j), "inputs": inputs, "p": p,
                                     "sigma_meas": sigma, "sigma_theory": sigma_th,
                                     "bias": float(err.mean()),
                                     "se": float(err.std(ddof=1) / math.sqrt(len(err))),
                                     "theory": value, **error_summary(err)})
    return pd.DataFrame(rows)


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


# ---------------------------------------------------------------------------------------- ε, p searched
def search_probs(n_shared, d_hidden: int, k: int) -> list[float]:
    """The searched connection probabilities at width d: p = (K/d)^(1/k) for every K of the log grid
    ``n_shared`` (K capped at d, so p <= 1). The search keeps the p of smallest ε per (k, d, network);
    nothing fixes K, so the exponent of ε(d) is measured, not set."""
    if len(n_shared) == 0 or any(not K > 0 for K in n_shared):
        raise ValueError(f"n_shared must be a non-empty grid of values > 0, got {n_shared!r}")
    return [uand.connect_prob(min(float(K), d_hidden), d_hidden, k) for K in n_shared]


def k_and_epsilon(n_features: int, d_hidden: int, k: int, n_shared, *, n_active: int = 4,
                  n_per_class: int = 5, sample: epsilon.Sample = epsilon.Sample(),
                  seed_network: int = 0) -> pd.DataFrame:
    """ε of the k-input AND (basis-aligned inputs) at every p of ``search_probs(n_shared, d, k)``.

    ε = the maximum |error| over (1) the random sample of ``evaluate_k_and`` (sample.n_inputs inputs
    with exactly s on, n_per_class tuples per number on, from sample.seed_inputs), scored through the
    network, and (2) the hard cases of ``epsilon.tuple_hard_errors``: of sample.n_candidates random
    k-tuples the sample.n_hard with the fewest neurons reading all of them, and the first n_hard as a
    control, each at its exact worst input (the s-k+1 features outside the tuple that the most
    neurons of N_T read, on beside k-1 of its features). B_p = U < p from one draw of keys (nested
    networks; at K = n_shared of ``evaluate_k_and`` the same network). One row per p: k, m, d,
    seed_network, K (grid value), p and the ``epsilon.summarize`` columns."""
    _check_k(k)
    _check_layer(n_features, d_hidden, n_active, k)
    m, d = n_features, d_hidden
    keys = uand.connection_keys(m, d, torch.Generator().manual_seed(checks.seed("seed_network",
                                                                                  seed_network)))
    active, inactive, gen = _inputs(m, n_active, sample.n_inputs, 2 * k, sample.seed_inputs)
    tuples, n_on = sample_tuples(active, inactive, k, n_per_class, gen)
    target = (n_on == k).float()
    candidates = epsilon.candidate_tuples(m, k, sample.n_candidates, sample.seed_inputs)
    keys_t, rows = keys.T.contiguous(), []        # features first: B_p^T = U^T < p without a copy
    for K, p in zip(n_shared, search_probs(n_shared, d, k)):
        Bt = keys_t < p
        B = Bt.T
        act = uand.activation(uand.preactivation_basis(B, active), -(k - 1.0))
        values, counts = uand.and_readout(act, B, tuples)
        errors = {epsilon.SOURCES[0]: values - target,
                  **epsilon.tuple_hard_errors(B, candidates, sample.n_hard, n_active, Bt=Bt)}
        rows.append({"k": k, "m": m, "d": d, "seed_network": seed_network, "K": float(K), "p": p,
                     **epsilon.summarize(errors, float((counts == 0).double().mean()))})
    return pd.DataFrame(rows)


def k_and_epsilon_sweep(n_features: int, widths, ks, n_shared, *, n_active: int = 4,
                        n_per_class: int = 5, sample: epsilon.Sample = epsilon.Sample(),
                        network_seeds=(0, 1), progress=None) -> pd.DataFrame:
    """``k_and_epsilon`` at every (k, d, network seed): one row per (k, d, seed_network, K).
    ``progress``: an optional tqdm bar, advanced once per network."""
    tables = []
    for k in ks:
        for d in widths:
            for seed in network_seeds:
                tables.append(k_and_epsilon(n_features, d, k, n_shared, n_active=n_active,
                                            n_per_class=n_per_class, sample=sample,
                                            seed_network=seed))
                if progress is not None:
                    progress.update(1)
    return pd.concat(tables, ignore_index=True)


def best_density(table: pd.DataFrame) -> pd.DataFrame:
    """``epsilon.best`` per (k, d, seed_network) of a ``k_and_epsilon_sweep`` table (the smallest ε;
    ties: the smaller p), with 'at_edge' judged on K: True where the best K is the first or last of the
    grid (the grid of p moves with d, so its ends are ends in K, not in p)."""
    grid = np.sort(table["K"].unique())
    rows = epsilon.best(table, by=("k", "d", "seed_network"))
    rows["at_edge"] = rows["K"].isin([grid[0], grid[-1]])
    return rows


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


# ---------------------------------------------------------------------------------------- stacking
def readout_rows(B: Tensor, tuples: Tensor) -> Tensor:
    """R (P, d) float32: the read-off rows r_T = prod_{i in T} B[:, i] / |N_T| of a fixed list of
    tuples (P, k) long, so that R a is ``uand.and_readout`` of every tuple at once (rows with
    |N_T| = 0 are 0). Stacked, they are the linear map R^l the next layer composes with (§4.3)."""
    mask = B.index_select(1, tuples[:, 0])
    for j in range(1, tuples.shape[1]):
        mask = mask & B.index_select(1, tuples[:, j])
    rows = mask.T.to(torch.float32)
    return rows / rows.sum(1, keepdim=True).clamp(min=1.0)


def stacked_inputs(gates: Tensor, n_features: int, n_active: int, n_inputs: int, n_off: int,
                   generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs that make the circuit's ANDs fire (spec §9 pitfall 7): each input switches on both
    features of one gate (drawn uniformly from gates (G, 2)) and s - 2 other random features.

    Returns (active (T, s) long: the gate's pair first, gate (T,) long: its index, off (T, n_off)
    long: distinct features that are off)."""
    if n_active < 3:
        raise ValueError(f"n_active must be >= 3 (a gate's pair and a third feature), got {n_active}")
    gate = torch.randint(0, len(gates), (n_inputs,), generator=generator)
    pair = gates[gate]                                                 # (T, 2)
    drawn = uand.sample_distinct(n_inputs, n_features, n_active + n_off, generator)
    clash = (drawn[..., None] == pair[:, None, :]).any(-1)
    order = torch.argsort(clash.to(torch.int8), dim=1, stable=True)    # non-clashing first
    rest = drawn.gather(1, order)[:, :n_active - 2 + n_off]
    return torch.cat([pair, rest[:, :n_active - 2]], 1), gate, rest[:, n_active - 2:]


def _stacked_network(n_features: int, d_hidden: int, n_gates: int, n_shared: float,
                     seed_network: int) -> dict:
    """The weights of ``stacked_and``: {'B_copy', 'B_and' (d, m), 'B2' (d, m + G) bool, 'gates' (G, 2),
    'p2'} from seed_network."""
    checks.positive_int("n_gates", n_gates)
    m, d, K = n_features, d_hidden, n_shared
    gen_net = torch.Generator().manual_seed(seed_network)
    B_copy = uand.connection_matrix(m, d, uand.connect_prob(K, d, 1), gen_net)
    B_and = uand.connection_matrix(m, d, uand.connect_prob(K, d, 2), gen_net)
    p2 = uand.connect_prob(K, d, 2)
    B2 = uand.connection_matrix(m + n_gates, d, p2, gen_net)
    return {"B_copy": B_copy, "B_and": B_and, "B2": B2, "p2": p2,
            "gates": epsilon.candidate_pairs(m, n_gates, seed_network)}


def _stacked_forward(net: dict, active: Tensor, centre: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Both layers of ``stacked_and`` on inputs active (T, s): (value, truth (T, m + G) float32: layer-1
    read-offs as layer 2 reads them and their targets; act2 (T, d) float32: layer-2 activations)."""
    m, gates = net["B_copy"].shape[1], net["gates"]
    on = torch.zeros(len(active), m, dtype=torch.bool).scatter_(1, active, True)
    truth = torch.cat([on, on[:, gates[:, 0]] & on[:, gates[:, 1]]], 1).float()
    pools = []
    for size, B, tup in [(1, net["B_copy"], torch.arange(m)[:, None]), (2, net["B_and"], gates)]:
        v = pool_forward(B, active, size) @ readout_rows(B, tup).T            # (T, m) or (T, G)
        pools.append(v - v.mean(1, keepdim=True) if centre else v)
    value = torch.cat(pools, 1)
    return value, truth, uand.activation(uand.preactivation_from_overlaps(net["B2"], value), -1.0)


def stacked_and(n_features: int, d_hidden: int, *, n_gates: int, n_active: int = 4,
                n_shared: float = 20, n_inputs: int = 200, n_off: int = 3, centre: bool = True,
                seed_network: int = 0, seed_inputs: int = 1) -> tuple[dict[str, Tensor], pd.DataFrame]:
    """Two stacked U-AND layers computing (a AND b) AND c (spec §4.3).

    Layer 1 (on m features): a copy pool (clipped units, p = K/d) and a U-AND pool (p = sqrt(K/d)),
    each of d neurons; its circuit reads m copies y_i and n_gates pair ANDs y_g, g = (a, b) from
    ``epsilon.candidate_pairs``: v1 = R^1 a^1, m + n_gates values per input. Layer 2 reads them as its
    features: W^2 = B^2 R^1 (B^2 Bernoulli(sqrt(K/d)) over the m + n_gates layer-1 features), bias -1,
    read-offs of pairs (g, c). With ``centre`` each layer-1 pool's read-offs are centred first (their
    mean over the pool is subtracted per input: a linear map, part of W^2), cancelling the positive
    bias that otherwise enters every layer-2 pre-activation about p m times.

    Returns (layer1, layer2): layer1 = {'value', 'truth'} (T, m + n_gates) float32 (columns: copies,
    then gates; 'value' as layer 2 reads it, centred or not); layer2 one row per top-level tuple:
    input, case ('both on', 'gate on, c off', 'gate off, c on', 'none on'), target, count, readout,
    error, theory (``and_error_theory`` of layer 2 with xi ~ N(mu, sigma^2), mu = p sum e_f and
    sigma^2 = p (1-p) sum e_f^2 over the layer-1 read errors e_f outside the tuple, the tuple's own
    errors added to the mean, and the number of layer-1 features on, s2, per input).
    Inputs come from ``stacked_inputs``; per input the tuples are (its gate, each of the s - 2 other
    on features), (its gate, n_off off features), (a random other gate, each other on feature) and
    (that gate, the off features)."""
    _check_layer(n_features, d_hidden, n_active, 2)
    checks.positive_int("n_off", n_off)
    m = n_features
    net = _stacked_network(n_features, d_hidden, n_gates, n_shared, seed_network)
    gates, B2, p2 = net["gates"], net["B2"], net["p2"]
    gen = torch.Generator().manual_seed(seed_inputs)
    active, gate, off = stacked_inputs(gates, m, n_active, n_inputs, n_off, gen)
    T = n_inputs
    value, truth, act2 = _stacked_forward(net, active, centre)
    other = (gate + 1 + torch.randint(0, n_gates - 1, (T,), generator=gen)) % n_gates
    g_on, g_off, s_rest = m + gate[:, None], m + other[:, None], active[:, 2:]
    parts = [(g_on, s_rest), (g_on, off), (g_off, s_rest), (g_off, off)]
    tuples = torch.cat([torch.stack(torch.broadcast_tensors(g, c), -1) for g, c in parts], 1)
    names = ["both on", "gate on, c off", "gate off, c on", "none on"]
    case = np.concatenate([[n] * c.shape[1] for n, (_, c) in zip(names, parts)])
    values, counts = uand.and_readout(act2, B2, tuples)
    x = truth.gather(1, tuples.reshape(T, -1)).reshape(tuples.shape)        # (T, P, 2)
    err1 = (value - truth).double()                                        # e_f, (T, m + G)
    own = err1.gather(1, tuples.reshape(T, -1)).reshape(tuples.shape)       # the tuple's e_f, (T, P, 2)
    e_own = own.sum(-1)
    mu = p2 * (err1.sum(1, keepdim=True) - e_own)
    sigma = (p2 * (1 - p2) * ((err1 ** 2).sum(1, keepdim=True) - (own ** 2).sum(-1))).clamp(min=0).sqrt()
    n_on2 = x.sum(-1).long()
    s2 = truth.sum(1).long()[:, None].expand_as(n_on2)
    theory = torch.zeros(n_on2.shape, dtype=torch.float64)
    for s_val, j in {(int(a), int(b)) for a, b in zip(s2.reshape(-1), n_on2.reshape(-1))}:
        sel = (s2 == s_val) & (n_on2 == j)
        theory[sel] = torch.from_numpy(np.atleast_1d(and_error_theory(
            s_val, 2, j, p2, noise_mean=(e_own + mu)[sel].numpy(), noise_std=sigma[sel].numpy())))
    target = (n_on2 == 2).float()
    layer2 = pd.DataFrame({"input": np.repeat(np.arange(T), tuples.shape[1]),
                           "case": np.tile(case, T), "target": target.reshape(-1).numpy(),
                           "count": counts.reshape(-1).numpy(),
                           "readout": values.reshape(-1).numpy().astype(np.float64),
                           "theory": theory.reshape(-1).numpy()})
    layer2["error"] = layer2["readout"] - layer2["target"]
    return {"value": value, "truth": truth}, layer2


def layer_errors(layer1: dict[str, Tensor], layer2: pd.DataFrame, n_features: int) -> pd.DataFrame:
    """``error_summary`` per layer of ``stacked_and``: layer 1 split into copies and gates (every
    read-off of every input), layer 2 over its tuples; 'error' is the read-off minus its target
    (a centred layer-1 value is compared with its target as layer 2 reads it)."""
    err1 = (layer1["value"] - layer1["truth"]).double()
    rows = [{"layer": 1, "gates": "copies x_i", **error_summary(err1[:, :n_features].numpy())},
            {"layer": 1, "gates": "a AND b", **error_summary(err1[:, n_features:].numpy())},
            {"layer": 2, "gates": "(a AND b) AND c", **error_summary(layer2["error"])}]
    return pd.DataFrame(rows)


def stacked_hard_errors(n_features: int, d_hidden: int, *, n_gates: int, n_active: int = 4,
                        n_shared: float = 20, centre: bool = True, n_candidates: int = 1000,
                        n_hard: int = 32, seed_network: int = 0, seed_inputs: int = 1) -> dict[str, Tensor]:
    """Targeted hard cases of ``stacked_and`` (same network), run through both layers.

    Candidates: n_candidates random top-level tuples (gate g = (a, b), copy c not in g). Hard tuples:
    the n_hard whose layer-2 read-off has the fewest neurons |N_(g,c)| (``epsilon.hard_tuples`` on B2);
    control: the first n_hard. Hard inputs per tuple: the s-2 base features l outside {a, b, c} whose
    copies the most neurons of N_(g,c) read (``epsilon.tuple_partners``; gates are not switched on
    directly), on beside a, b, c (both on: s-3 of them), beside a, b (gate on, c off), beside c, a and
    beside c, b (gate off, c on). Hard cases, not proven worst ones (the layer-1 errors move too).
    Returns {epsilon.SOURCES[1]: |error| of the control tuples, SOURCES[2]: of the hard tuples},
    each (4 n_hard,) float64 in the input order above."""
    _check_layer(n_features, d_hidden, n_active, 2)
    if n_active < 3:
        raise ValueError(f"n_active must be >= 3 (a gate's pair and c), got {n_active}")
    m, s = n_features, n_active
    net = _stacked_network(n_features, d_hidden, n_gates, n_shared, seed_network)
    gates, B2 = net["gates"], net["B2"]
    gen = torch.Generator().manual_seed(checks.seed("seed_inputs", seed_inputs))
    g = torch.randint(0, n_gates, (checks.positive_int("n_candidates", n_candidates),), generator=gen)
    c = torch.randint(0, m, (n_candidates,), generator=gen)
    keep = (c != gates[g, 0]) & (c != gates[g, 1])
    candidates = torch.stack([c[keep], m + g[keep]], 1)               # layer-2 features: copy c, gate g
    Bt2 = B2.T.contiguous()
    out = {}
    for source, tuples in [(epsilon.SOURCES[1], candidates[:n_hard]),
                           (epsilon.SOURCES[2], epsilon.hard_tuples(B2, candidates, n_hard, Bt=Bt2))]:
        ranked, _, _ = epsilon.tuple_partners(B2, tuples, min(B2.shape[1] - 2, 4 * s + 8), Bt=Bt2)
        a, b = gates[tuples[:, 1] - m].unbind(1)
        cc = tuples[:, 0]
        usable = (ranked < m) & (ranked != a[:, None]) & (ranked != b[:, None])   # copies outside g, c
        if (usable.sum(1) < s - 2).any():
            raise ValueError("too few copy features among the ranked partners: raise n_features")
        order = torch.argsort((~usable).to(torch.int8), dim=1, stable=True)
        top = ranked.gather(1, order)[:, :s - 2]
        active = torch.cat([torch.cat([torch.stack([a, b, cc], 1), top[:, :s - 3]], 1),
                            torch.cat([torch.stack([a, b], 1), top], 1),
                            torch.cat([torch.stack([cc, a], 1), top], 1),
                            torch.cat([torch.stack([cc, b], 1), top], 1)])
        tup = tuples.repeat(4, 1)[:, None, :]
        _, _, act2 = _stacked_forward(net, active, centre)
        values, _ = uand.and_readout(act2, B2, tup)
        target = torch.cat([torch.ones(len(tuples)), torch.zeros(3 * len(tuples))])
        out[source] = (values[:, 0] - target).abs().double()
    return out
