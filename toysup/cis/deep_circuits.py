"""Deep sparse boolean circuits emulated by a ReLU MLP with error correction (Hänni et al. 2024, §5;
cis spec §5). The paper's error-correction primitive is not available to us: the construction below
is the spec's reconstruction [R], a plain ReLU MLP chain with no residual stream.

Circuit. Layer 0 holds the m input bits g^0 = b (exactly s on). Gate i of layer l+1 is
    g^{l+1}_i = type_i(g^l_{perm(i)}, g^l_{partner(i)}),   type in {COPY, AND, OR},
COPY with probability 1 - 2q, AND with q, OR with q; perm is a random permutation and
partner(i) != perm(i). The first transition is all COPY (a pure permutation) by default.

Network layer l (l = 1..L) reads the circuit-layer-(l-1) values through linear read-offs
v_hat^{l-1} = R^{l-1} h^{l-1} (v_hat^0 = b) and has two pools of units with fresh random 0/1
connectivity per layer:
    OR pool  (d_or units):  z = B_or  v_hat,  B_or  ~ Bern(K / d_or)        (each gate owns ~K units)
    AND pool (d_and units): z = B_and v_hat,  B_and ~ Bern(sqrt(K / d_and))  (each pair shares ~K)
Unit outputs (``network``, one of NETWORKS):
    "ec"            clip_[a,b](z) = (ReLU(z - a) - ReLU(z - b)) / (b - a), two ReLUs per unit,
                    OR pool [a, b] = [delta, 1 - delta], AND pool [1 + delta, 2 - delta];
    "naive_centred" ReLU(z) (OR pool), ReLU(z - 1) (AND pool);
    "naive_raw"     same units as naive_centred.
Read-offs of circuit layer l from h^l (N_u = {n : B_or[n, u]}, N_uv = {n : B_and[n, u] B_and[n, v]}):
    COPY(u)  = mean_{n in N_u} a^or_n   - [centred] mean_n a^or_n
    AND(u,v) = mean_{n in N_uv} a^and_n - [centred] mean_n a^and_n
    OR(u,v)  = COPY(u) + COPY(v) - AND(u,v)
("ec" and "naive_centred" are centred, "naive_raw" is not.) Empty N_u / N_uv divide by 1 and are
counted by ``empty_readoffs``.

As an explicit MLP (``explicit_mlp``, small sizes only): hidden state of layer l is
h^l = [ReLU(C z - a); ReLU(C z - b)] for "ec" (width 2(d_or + d_and)) or ReLU(C z - a) for the naive
networks (width d_or + d_and), with C = [B_or; B_and] (D x m), z = R^{l-1} h^{l-1}, so
W^l = [C R^{l-1}; C R^{l-1}] and W^1 = [C; C]. R^l has shape (m, hidden).

Shapes: inputs x0 (T, m) float; circuit values (L+1, T, m) bool; read-off values (L+1, T, m) float.
The factored code never builds an m x m matrix or all pair read-offs: only the pairs the circuit uses.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from toysup import checks, fits
from toysup.cis import uand

COPY, AND, OR = 0, 1, 2
NETWORKS = ("ec", "naive_centred", "naive_raw")   # error-corrected and the two naive chains


@dataclass(frozen=True)
class Circuit:
    """A random fan-in-2 circuit of width m and depth L; arrays (L, m), row l builds layer l+1."""

    perm: Tensor        # (L, m) long: first input of each gate
    partner: Tensor     # (L, m) long: second input (ignored for COPY)
    gate_type: Tensor   # (L, m) long: COPY / AND / OR

    @property
    def depth(self) -> int:
        return self.perm.shape[0]

    @property
    def n_features(self) -> int:
        return self.perm.shape[1]


def random_circuit(n_features: int, depth: int, *, gate_prob: float = 0.1,
                   first_copy: bool = True, generator: torch.Generator) -> Circuit:
    """Random sparsity-preserving circuit (spec §5.2): COPY w.p. 1 - 2q, AND w.p. q, OR w.p. q."""
    checks.positive_int("n_features", n_features)
    if n_features < 2:
        raise ValueError(f"n_features must be >= 2 for fan-in-2 gates, got {n_features}")
    checks.positive_int("depth", depth)
    if not 0 <= gate_prob <= 0.5:
        raise ValueError(f"gate_prob must lie in [0, 0.5], got {gate_prob!r}")
    m = n_features
    perm = torch.stack([torch.randperm(m, generator=generator) for _ in range(depth)])
    shift = torch.randint(1, m, (depth, m), generator=generator)
    partner = (perm + shift) % m                      # uniform over the m - 1 others
    u = torch.rand(depth, m, generator=generator)
    gate_type = torch.where(u < gate_prob, AND, torch.where(u < 2 * gate_prob, OR, COPY))
    if first_copy:
        gate_type[0] = COPY
    return Circuit(perm, partner, gate_type)


def evaluate_circuit(circuit: Circuit, x0: Tensor) -> Tensor:
    """Ground-truth gate values of every layer: (L+1, T, m) bool, layer 0 = x0."""
    g = x0.bool()
    out = [g]
    for l in range(circuit.depth):
        a, b = g[:, circuit.perm[l]], g[:, circuit.partner[l]]
        t = circuit.gate_type[l]
        g = torch.where(t == COPY, a, torch.where(t == AND, a & b, a | b))
        out.append(g)
    return torch.stack(out)


def sparse_inputs(circuit: Circuit, n_inputs: int, n_active: int, *, max_active: int | None = None,
                  generator: torch.Generator, max_draws: int = 64) -> tuple[Tensor, Tensor]:
    """Exactly-s inputs kept only if every layer has at most ``max_active`` (default 2s) gates on.

    Returns x0 (T, m) float32 and the circuit values (L+1, T, m) bool. Draws batches of 4T
    candidates until T pass; raises ValueError if ``max_draws`` batches do not suffice.
    """
    checks.positive_int("n_inputs", n_inputs)
    max_active = 2 * n_active if max_active is None else max_active
    checks.positive_int("max_active", max_active)
    kept_x, kept_g, n_kept = [], [], 0
    for _ in range(max_draws):
        x = uand.sample_exactly_s(4 * n_inputs, circuit.n_features, n_active, generator)
        g = evaluate_circuit(circuit, x)
        ok = (g.sum(dim=2) <= max_active).all(dim=0)
        kept_x.append(x[ok])
        kept_g.append(g[:, ok])
        n_kept += int(ok.sum())
        if n_kept >= n_inputs:
            return torch.cat(kept_x)[:n_inputs], torch.cat(kept_g, dim=1)[:, :n_inputs]
    raise ValueError(f"max_draws={max_draws} batches gave only {n_kept} of n_inputs={n_inputs} "
                     f"inputs with at most max_active={max_active} gates on per layer")


@dataclass(frozen=True)
class DeepConfig:
    """Pool widths and the error-correction margin. n_shared = K, margin = delta."""

    d_or: int
    d_and: int
    n_shared: float = 24.0
    margin: float = 0.4

    def __post_init__(self) -> None:
        checks.positive_int("d_or", self.d_or)
        checks.positive_int("d_and", self.d_and)
        if not 0 < self.n_shared <= self.d_or:
            raise ValueError(f"n_shared must lie in (0, d_or={self.d_or}], got {self.n_shared!r}")
        if not 0 <= self.margin < 0.5:
            raise ValueError(f"margin must lie in [0, 0.5), got {self.margin!r}")

    @property
    def or_prob(self) -> float:
        return self.n_shared / self.d_or

    @property
    def and_prob(self) -> float:
        return min(1.0, (self.n_shared / self.d_and) ** 0.5)

    def thresholds(self, network: str) -> tuple[float, float, float, float]:
        """(a_or, b_or, a_and, b_and): clip intervals ("ec") or ReLU offsets (b = inf, naive)."""
        _check_network(network)
        if network == "ec":
            return self.margin, 1 - self.margin, 1 + self.margin, 2 - self.margin
        return 0.0, float("inf"), 1.0, float("inf")


def _check_network(network: str) -> None:
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")


def connectivity(config: DeepConfig, n_features: int, layer: int, net_seed: int
                 ) -> tuple[Tensor, Tensor]:
    """Connectivity (B_or (d_or, m), B_and (d_and, m)) bool of network layer ``layer`` >= 1.

    Regenerated deterministically from (net_seed, layer), so a depth-L network costs no memory.
    """
    checks.positive_int("layer", layer)
    gen = torch.Generator().manual_seed(1_000_003 * int(net_seed) + layer)
    B_or = torch.rand(config.d_or, n_features, generator=gen) < config.or_prob
    B_and = torch.rand(config.d_and, n_features, generator=gen) < config.and_prob
    return B_or, B_and


def _units(z: Tensor, a: float, b: float) -> Tensor:
    """clip_[a,b](z) written as two ReLUs, or ReLU(z - a) when b is infinite."""
    if np.isinf(b):
        return torch.relu(z - a)
    return (torch.relu(z - a) - torch.relu(z - b)) / (b - a)


def _gate_readoffs(a_or: Tensor, a_and: Tensor, B_or: Tensor, B_and: Tensor, perm: Tensor,
                   partner: Tensor, gate_type: Tensor, centred: bool) -> tuple[Tensor, int]:
    """Read-off values (T, m) of the gates built from the pool outputs, and # empty read-offs."""
    Bo = B_or.to(a_or.dtype)
    n_u = Bo.sum(0)
    copy = (a_or @ Bo) / n_u.clamp(min=1)                            # (T, m): COPY(u) for all u
    if centred:
        copy = copy - a_or.mean(1, keepdim=True)
    empty = int((n_u == 0).sum())
    values = copy[:, perm].clone()
    pair = (gate_type != COPY).nonzero().squeeze(1)
    if pair.numel():
        u, v = perm[pair], partner[pair]
        mask = (B_and[:, u] & B_and[:, v]).to(a_and.dtype)           # (d_and, P): only used pairs
        n_uv = mask.sum(0)
        empty += int((n_uv == 0).sum())
        and_val = (a_and @ mask) / n_uv.clamp(min=1)
        if centred:
            and_val = and_val - a_and.mean(1, keepdim=True)
        is_or = gate_type[pair] == OR
        or_val = copy[:, u] + copy[:, v] - and_val
        values[:, pair] = torch.where(is_or, or_val, and_val)
    return values, empty


def run_network(circuit: Circuit, config: DeepConfig, x0: Tensor, *, network: str = "ec",
                net_seed: int = 0, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> tuple[Tensor, int]:
    """Factored forward pass: read-off values v_hat^l for l = 0..L, (L+1, T, m), and the number of
    empty read-off sets met (their read-off is 0). v_hat^0 = x0. Returned on the CPU."""
    _check_network(network)
    dev = checks.device(device)
    a_or_t, b_or_t, a_and_t, b_and_t = config.thresholds(network)
    m = circuit.n_features
    if x0.shape[-1] != m:
        raise ValueError(f"x0 must have {m} columns (n_features), got shape {tuple(x0.shape)}")
    v = x0.to(dev, dtype)
    out, empty = [v.cpu()], 0
    for l in range(1, circuit.depth + 1):
        B_or, B_and = (B.to(dev) for B in connectivity(config, m, l, net_seed))
        a_or = _units(v @ B_or.to(dtype).T, a_or_t, b_or_t)
        a_and = _units(v @ B_and.to(dtype).T, a_and_t, b_and_t)
        v, e = _gate_readoffs(a_or, a_and, B_or, B_and, circuit.perm[l - 1].to(dev),
                              circuit.partner[l - 1].to(dev), circuit.gate_type[l - 1].to(dev),
                              centred=network != "naive_raw")
        empty += e
        out.append(v.cpu())
    return torch.stack(out), empty


def explicit_mlp(circuit: Circuit, config: DeepConfig, *, network: str = "ec", net_seed: int = 0,
                 max_hidden: int = 20_000, weights: bool = True
                 ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """The same network as explicit ReLU layers (float64; small sizes only).

    Returns weights W^l (hidden, in), biases b^l (hidden,) and read-offs R^l (m, hidden) for
    l = 1..L, with h^l = ReLU(W^l h^{l-1} + b^l), h^0 = x0 and v_hat^l = R^l h^l.
    ``weights=False`` skips the dense W^l (returns an empty list) and lifts ``max_hidden``.
    """
    _check_network(network)
    m, ec = circuit.n_features, network == "ec"
    n_units = config.d_or + config.d_and
    hidden = 2 * n_units if ec else n_units
    if weights and hidden > max_hidden:
        raise ValueError(f"explicit network would have hidden={hidden} > max_hidden={max_hidden}")
    a_or, b_or, a_and, b_and = config.thresholds(network)
    low = torch.cat([torch.full((config.d_or,), -a_or, dtype=torch.float64),
                     torch.full((config.d_and,), -a_and, dtype=torch.float64)])
    high = torch.cat([torch.full((config.d_or,), -b_or, dtype=torch.float64),
                      torch.full((config.d_and,), -b_and, dtype=torch.float64)])
    bias = torch.cat([low, high]).double() if ec else low.double()
    Ws, bs, Rs = [], [], []
    R_prev = torch.eye(m, dtype=torch.float64)
    for l in range(1, circuit.depth + 1):
        B_or, B_and = connectivity(config, m, l, net_seed)
        C = torch.cat([B_or, B_and]).double()                       # (D, m)
        if weights:
            W = C @ R_prev
            Ws.append(torch.cat([W, W]) if ec else W)
        bs.append(bias.clone())
        # read-off coefficients on the D clipped units, then spread over the ReLUs
        perm, partner, t = (circuit.perm[l - 1], circuit.partner[l - 1], circuit.gate_type[l - 1])
        Bo, Ba = B_or.double(), B_and.double()
        copy = (Bo / Bo.sum(0).clamp(min=1)).T                      # (m, d_or)
        if network != "naive_raw":
            copy = copy - 1.0 / config.d_or
        pair_mask = (Ba[:, perm] * Ba[:, partner]).T                # (m, d_and) per gate
        and_c = pair_mask / pair_mask.sum(1, keepdim=True).clamp(min=1)
        if network != "naive_raw":
            and_c = and_c - 1.0 / config.d_and
        R_or = torch.where((t == COPY)[:, None], copy[perm],
                           torch.where((t == OR)[:, None], copy[perm] + copy[partner], 0.0))
        R_and = torch.where((t == AND)[:, None], and_c, torch.where((t == OR)[:, None], -and_c, 0.0))
        R = torch.cat([R_or, R_and], dim=1)
        if ec:
            R = torch.cat([R, -R], dim=1) / (b_or - a_or)
        Rs.append(R)
        R_prev = R
    return Ws, bs, Rs


def explicit_forward(Ws: list[Tensor], bs: list[Tensor], Rs: list[Tensor], x0: Tensor) -> Tensor:
    """Read-off values (L+1, T, m) of the explicit MLP: h^l = ReLU(W^l h^{l-1} + b^l), v = R^l h^l."""
    h = x0.to(Ws[0].dtype)
    out = [h]
    for W, b, R in zip(Ws, bs, Rs):
        h = torch.relu(h @ W.T + b)
        out.append(h @ R.T)
    return torch.stack(out)


def layer_errors(values: Tensor, truth: Tensor, *, threshold: float = 0.5) -> pd.DataFrame:
    """Per-layer |v_hat - g| over all gates and inputs: mean, q99, q99.9, max and BER (> threshold).

    values (L+1, T, m) float, truth (L+1, T, m) bool -> one row per layer l = 1..L.
    """
    rows = []
    for l in range(1, values.shape[0]):
        err = (values[l].double() - truth[l].double()).abs()
        err = torch.nan_to_num(err, nan=float("inf"))
        q99, q999 = np.quantile(err.numpy(), [0.99, 0.999])
        rows.append({"layer": l, "mean": float(err.mean()), "q99": float(q99),
                     "q999": float(q999), "max": float(err.max()),
                     "ber": float((err > threshold).double().mean())})
    return pd.DataFrame(rows)


def depth_experiment(n_features: int, depth: int, config: DeepConfig, *, n_active: int = 3,
                     n_inputs: int = 128, gate_prob: float = 0.1, net_seed: int = 0,
                     networks: tuple[str, ...] = NETWORKS, generator: torch.Generator,
                     device: str | torch.device = "cpu") -> pd.DataFrame:
    """Spec §5.4 NB4: one circuit, kept sparse inputs, every network on the same connectivity.

    The circuit is drawn from ``net_seed`` (network randomness), the inputs from ``generator``.
    Returns ``layer_errors`` rows with a ``network`` column. naive_raw runs in float64.
    """
    circuit = random_circuit(n_features, depth, gate_prob=gate_prob,
                             generator=torch.Generator().manual_seed(int(net_seed)))
    x0, truth = sparse_inputs(circuit, n_inputs, n_active, generator=generator)
    frames = []
    for network in networks:
        dtype = torch.float64 if network == "naive_raw" else torch.float32
        values, _ = run_network(circuit, config, x0, network=network, net_seed=net_seed, dtype=dtype,
                                device=device)
        frames.append(layer_errors(values, truth).assign(network=network))
    return pd.concat(frames, ignore_index=True)


def and_noise_theory(n_features: int, d: int, n_shared: float, n_active: int) -> float:
    """sigma_and = sqrt(s sqrt(K) m / d^1.5) for d_or = d_and = d (spec §5.2)."""
    return float(np.sqrt(n_active * np.sqrt(n_shared) * n_features / d ** 1.5))


def and_noise(n_features: int, d: int, *, n_shared: float = 16.0, n_active: int = 3,
              margin: float = 0.4, n_inputs: int = 64, net_seed: int = 0,
              generator: torch.Generator, device: str | torch.device = "cpu") -> float:
    """Measured AND-pool pre-activation noise of layer 2, std(B_and (v_hat^1 - g^1)), with
    d_or = d_and = d and a pure-permutation layer 1 (so g^1 is exactly s-sparse)."""
    config = DeepConfig(d_or=d, d_and=d, n_shared=n_shared, margin=margin)
    circuit = random_circuit(n_features, 1, generator=torch.Generator().manual_seed(int(net_seed)))
    x0 = uand.sample_exactly_s(n_inputs, n_features, n_active, generator)
    truth = evaluate_circuit(circuit, x0)
    values, _ = run_network(circuit, config, x0, network="ec", net_seed=net_seed, device=device)
    err = values[1] - truth[1].float()
    _, B_and = connectivity(config, n_features, 2, net_seed)
    return float((err @ B_and.float().T).double().std())


def capacity_grid(n_features_grid, d_grid, *, n_shared: float = 16.0, n_active: int = 3,
                  n_inputs: int = 64, net_seeds=(0, 1, 2), generator: torch.Generator,
                  device: str | torch.device = "cpu") -> pd.DataFrame:
    """sigma_and on the (m, d) grid, averaged (in variance) over network seeds, with theory.

    Columns: m, d, sigma, sigma_theory, x = m / d^1.5, var = sigma^2.
    """
    rows = []
    for d in d_grid:
        for m in n_features_grid:
            var = np.mean([and_noise(int(m), int(d), n_shared=n_shared, n_active=n_active,
                                     n_inputs=n_inputs, net_seed=s, generator=generator,
                                     device=device) ** 2
                           for s in net_seeds])
            rows.append({"m": int(m), "d": int(d), "sigma": float(np.sqrt(var)),
                         "sigma_theory": and_noise_theory(int(m), int(d), n_shared, n_active)})
    df = pd.DataFrame(rows)
    df["x"] = df["m"] / df["d"] ** 1.5
    df["var"] = df["sigma"] ** 2
    return df


@dataclass(frozen=True)
class CapacityFit:
    """``capacity_fit``'s result: the exponents of sigma^2 in m and d, and m_max(d) with its law."""

    slope_m: float             # a in log sigma^2 = c + a log m + b log d
    slope_d: float             # b
    d: np.ndarray              # the widths of the grid
    m_max: np.ndarray          # m_max(d) at sigma_target
    m_max_law: fits.PowerLaw   # m_max against d; theory slope 1.5


def capacity_fit(grid: pd.DataFrame, sigma_target: float) -> CapacityFit:
    """Fit log sigma^2 = c + a log m + b log d; m_max(d) at sigma_target from per-d fits.

    m_max(d) solves sigma(m, d) = sigma_target on each d's own power law in m
    (``fits.power_law``); ``m_max_law`` is the power law of m_max against d.
    """
    X = np.column_stack([np.ones(len(grid)), np.log(grid["m"]), np.log(grid["d"])])
    coef = np.linalg.lstsq(X, np.log(grid["var"].to_numpy()), rcond=None)[0]
    ds, m_max = [], []
    for d, rows in grid.groupby("d"):
        law = fits.power_law(rows["m"], rows["var"])
        ds.append(d)
        m_max.append(np.exp((np.log(sigma_target ** 2) - law.intercept) / law.slope))
    return CapacityFit(float(coef[1]), float(coef[2]), np.array(ds, float), np.array(m_max),
                       fits.power_law(ds, m_max))
