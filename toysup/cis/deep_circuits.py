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

Wiring (``WIRINGS``). "dense" draws each layer's (d, m) 0/1 matrices entry by entry (d m uniforms);
"sparse" draws, from the same per-layer seed, only the connections: each gate's neurons as the
positions of a Bernoulli process (geometric gaps), held as sparse (d, m) matrices, so a layer costs
O(connections) = O(m (K + sqrt(K d_and))) in time and memory instead of O(m d). Every neuron's
pre-activation is still computed exactly: read-off noise reaches every neuron, so skipping the
neurons that no active gate reaches would assume the very noise bound the run tests. The two
wirings are different draws of the same distribution; ``explicit_mlp`` builds either densely.

Circuits whose AND gates fire (``twin_circuit``). With random partners an AND gate almost never has
both inputs on (spec §9, pitfall 7). A twinned circuit carries every signal on two gates (2j, 2j+1,
"twins") and gives a fraction of the AND gates the twin of their first input as partner: such a gate
outputs 1 whenever its signal is on, through the AND pool's pair read-off like any AND.

Inputs in superposition (``superposed_readoffs``): the network input is x = Phi b (d_input < m,
Phi from ``uand.embedding_columns``), so the first layer reads v_hat^0 = Phi^T x = Phi^T Phi b
instead of b; W^1 = C Phi^T is still one fixed linear map.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm   # plain text bar: tqdm.auto warns when ipywidgets is missing

from toysup import checks, fits
from toysup.cis import uand

COPY, AND, OR = 0, 1, 2
NETWORKS = ("ec", "naive_centred", "naive_raw")   # error-corrected and the two naive chains
WIRINGS = ("dense", "sparse")


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


def twin_circuit(n_signals: int, depth: int, *, gate_prob: float = 0.1, twin_and_prob: float = 0.1,
                 first_copy: bool = True, generator: torch.Generator) -> Circuit:
    """Twinned circuit of width m = 2 n_signals: gates 2j and 2j+1 always carry the same value.

    Signal j of layer l+1 is type_j(signal perm_j, signal partner_j) of layer l, as in
    ``random_circuit`` (COPY w.p. 1 - 2q - t, AND w.p. q, OR w.p. q), computed once on each twin
    (gate 2j + k reads gates 2 perm_j + k and 2 partner_j + k); with probability t
    (``twin_and_prob``) it is instead AND(gate 2 perm_j + k, its twin 2 perm_j + 1 - k), which is on
    exactly when signal perm_j is. Arrays (depth, 2 n_signals); inputs must be twinned
    (``sparse_inputs(..., twinned=True)``)."""
    if not 0 <= twin_and_prob <= 1 - 2 * gate_prob:
        raise ValueError(f"twin_and_prob must lie in [0, 1 - 2 gate_prob = {1 - 2 * gate_prob:g}], "
                         f"got {twin_and_prob!r}")
    signals = random_circuit(n_signals, depth, gate_prob=gate_prob, first_copy=first_copy,
                             generator=generator)
    cut = twin_and_prob / (1 - 2 * gate_prob) if twin_and_prob else 0.0     # P(twin | COPY drawn)
    twin = torch.rand(depth, n_signals, generator=generator) < cut
    twin &= signals.gate_type == COPY
    if first_copy:
        twin[0] = False
    k = torch.arange(2)
    perm = (2 * signals.perm[..., None] + k).flatten(1)
    partner = torch.where(twin[..., None], 2 * signals.perm[..., None] + 1 - k,
                          2 * signals.partner[..., None] + k).flatten(1)
    gate_type = torch.where(twin, AND, signals.gate_type).repeat_interleave(2, dim=1)
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
                  generator: torch.Generator, max_draws: int = 64, twinned: bool = False,
                  min_active: int = 0) -> tuple[Tensor, Tensor]:
    """Exactly-s inputs kept only if every layer has at most ``max_active`` (default 2s) gates on,
    and at least ``min_active`` (default 0; 1 keeps only inputs whose circuit never dies out).

    ``twinned`` (for ``twin_circuit``): s of the m/2 signals on, each on both its gates, so 2s gates
    are on at layer 0 and ``max_active`` defaults to 4s gates.
    Returns x0 (T, m) float32 and the circuit values (L+1, T, m) bool. Draws batches of 4T
    candidates until T pass; raises ValueError if ``max_draws`` batches do not suffice.
    """
    checks.positive_int("n_inputs", n_inputs)
    on = 2 * n_active if twinned else n_active
    max_active = 2 * on if max_active is None else max_active
    checks.positive_int("max_active", max_active)
    if not 0 <= min_active <= max_active:
        raise ValueError(f"min_active must lie in [0, max_active={max_active}], got {min_active!r}")
    if twinned and circuit.n_features % 2:
        raise ValueError(f"twinned inputs need an even n_features, got {circuit.n_features}")
    kept_x, kept_g, n_kept = [], [], 0
    for _ in range(max_draws):
        if twinned:
            x = uand.sample_exactly_s(4 * n_inputs, circuit.n_features // 2, n_active,
                                      generator).repeat_interleave(2, dim=1)
        else:
            x = uand.sample_exactly_s(4 * n_inputs, circuit.n_features, n_active, generator)
        g = evaluate_circuit(circuit, x)
        on = g.sum(dim=2)
        ok = ((on <= max_active) & (on >= min_active)).all(dim=0)
        kept_x.append(x[ok])
        kept_g.append(g[:, ok])
        n_kept += int(ok.sum())
        if n_kept >= n_inputs:
            return torch.cat(kept_x)[:n_inputs], torch.cat(kept_g, dim=1)[:, :n_inputs]
    raise ValueError(f"max_draws={max_draws} batches gave only {n_kept} of n_inputs={n_inputs} "
                     f"inputs with min_active={min_active} to max_active={max_active} gates on per layer")


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


def _layer_generator(layer: int, net_seed: int) -> torch.Generator:
    checks.positive_int("layer", layer)
    return torch.Generator().manual_seed(1_000_003 * int(net_seed) + layer)


def connectivity(config: DeepConfig, n_features: int, layer: int, net_seed: int
                 ) -> tuple[Tensor, Tensor]:
    """Connectivity (B_or (d_or, m), B_and (d_and, m)) bool of network layer ``layer`` >= 1.

    Regenerated deterministically from (net_seed, layer), so a depth-L network costs no memory.
    """
    gen = _layer_generator(layer, net_seed)
    B_or = torch.rand(config.d_or, n_features, generator=gen) < config.or_prob
    B_and = torch.rand(config.d_and, n_features, generator=gen) < config.and_prob
    return B_or, B_and


def bernoulli_rows(n_rows: int, n_cols: int, prob: float, generator: torch.Generator) -> Tensor:
    """(n_rows, n_cols) matrix of i.i.d. Bernoulli(prob) 0/1 entries as a sparse CSR float32
    tensor, drawn row by row as a Bernoulli process: the gaps between successive ones of a row are
    Geometric(prob) (floor of an exponential), so only about prob n_rows n_cols numbers are drawn."""
    checks.positive_int("n_rows", n_rows)
    checks.positive_int("n_cols", n_cols)
    prob = checks.unit_interval("prob", prob, closed_low=True)
    if prob == 1.0:
        return torch.ones(n_rows, n_cols).to_sparse_csr()
    block = int(n_cols * prob + 6 * np.sqrt(n_cols * prob) + 8)      # gaps per row per draw
    rate = -np.log1p(-prob)                                          # 0 when prob = 0: no ones
    cols = torch.full((n_rows, 1), -1.0)
    while (cols[:, -1] < n_cols).any():                              # a second block: rare
        gaps = torch.floor(torch.empty(n_rows, block).exponential_(generator=generator) / rate) + 1
        cols = torch.cat([cols, cols[:, -1:] + gaps.cumsum(1)], dim=1)
    keep = (cols >= 0) & (cols < n_cols)                             # ascending along each row
    crow = torch.zeros(n_rows + 1, dtype=torch.long)
    crow[1:] = keep.sum(1).cumsum(0)
    index = cols[keep].long()
    return torch.sparse_csr_tensor(crow, index, torch.ones(index.numel()), (n_rows, n_cols),
                                   check_invariants=False)


class Pool:
    """One pool's 0/1 connectivity B (d, m) (``WIRINGS``): a dense float tensor, or sparse CSR.

    ``pre(v)`` = v B^T (T, d), ``read(a)`` = a B (T, m), ``counts()`` = |N_u| (m,),
    ``columns(idx)`` = B[:, idx] dense (d, len(idx)); each costs O(connections) when sparse."""

    def __init__(self, B: Tensor) -> None:
        self.B = B
        self.sparse = B.layout == torch.sparse_csr
        self._Bt: Tensor | None = None

    def to(self, device: torch.device, dtype: torch.dtype) -> "Pool":
        if not self.sparse:
            return Pool(self.B.to(device, dtype))
        B = self.B
        return Pool(torch.sparse_csr_tensor(B.crow_indices(), B.col_indices(), B.values().to(dtype),
                                            B.shape, check_invariants=False).to(device))

    def dense(self) -> Tensor:
        return self.B.to_dense() if self.sparse else self.B

    def pre(self, v: Tensor) -> Tensor:
        return (self.B @ v.T).T if self.sparse else v @ self.B.T

    def _transposed(self) -> Tensor:
        if self._Bt is None:
            B = self.B
            rows = torch.repeat_interleave(torch.arange(B.shape[0], device=B.device), B.crow_indices().diff())
            coo = torch.sparse_coo_tensor(torch.stack([B.col_indices(), rows]), B.values(), B.shape[::-1],
                                          check_invariants=False)
            self._Bt = coo.coalesce().to_sparse_csr()
        return self._Bt

    def read(self, a: Tensor) -> Tensor:
        return (self._transposed() @ a.T).T if self.sparse else a @ self.B

    def counts(self) -> Tensor:
        if not self.sparse:
            return self.B.sum(0)
        cols = self.B.col_indices()
        return torch.zeros(self.B.shape[1], dtype=self.B.dtype, device=cols.device).index_add_(
            0, cols, self.B.values())

    def columns(self, idx: Tensor) -> Tensor:
        if not self.sparse:
            return self.B[:, idx]
        B = self.B
        gates, inverse = torch.unique(idx, return_inverse=True)
        slot = torch.full((B.shape[1],), -1, dtype=torch.long, device=idx.device)
        slot[gates] = torch.arange(gates.numel(), device=idx.device)
        hit = slot[B.col_indices()]                                   # (nnz,): column's slot or -1
        at = (hit >= 0).nonzero().squeeze(1)
        rows = torch.searchsorted(B.crow_indices(), at, right=True) - 1
        out = torch.zeros(B.shape[0] * gates.numel(), dtype=B.dtype, device=idx.device)
        out[rows * gates.numel() + hit[at]] = 1
        return out.view(B.shape[0], gates.numel())[:, inverse]


def sparse_connectivity(config: DeepConfig, n_features: int, layer: int, net_seed: int
                        ) -> tuple[Tensor, Tensor]:
    """The "sparse" wiring of network layer ``layer`` >= 1: (B_or (d_or, m), B_and (d_and, m)) as
    sparse CSR float32 0/1 matrices (``bernoulli_rows``), from the same per-layer seed as
    ``connectivity`` (a different draw of the same distribution)."""
    gen = _layer_generator(layer, net_seed)
    return (bernoulli_rows(config.d_or, n_features, config.or_prob, gen),
            bernoulli_rows(config.d_and, n_features, config.and_prob, gen))


def wiring_of(wiring: str, config: DeepConfig, n_features: int, layer: int, net_seed: int
              ) -> tuple[Pool, Pool]:
    """Layer ``layer``'s (OR pool, AND pool) connectivity, drawn as ``wiring`` (``WIRINGS``)."""
    if wiring not in WIRINGS:
        raise ValueError(f"wiring must be one of {WIRINGS}, got {wiring!r}")
    if wiring == "sparse":
        return tuple(Pool(B) for B in sparse_connectivity(config, n_features, layer, net_seed))
    return tuple(Pool(B.float()) for B in connectivity(config, n_features, layer, net_seed))


def _units(z: Tensor, a: float, b: float) -> Tensor:
    """clip_[a,b](z) written as two ReLUs, or ReLU(z - a) when b is infinite."""
    if np.isinf(b):
        return torch.relu(z - a)
    return (torch.relu(z - a) - torch.relu(z - b)) / (b - a)


@dataclass(frozen=True)
class _ReadoffSets:
    """One layer's read-off sets: |N_u| (m,), the non-COPY gates ``pair`` (P,) with their inputs
    u, v (P,), the masks of N_uv (d_and, P) and |N_uv| (P,)."""

    n_u: Tensor
    pair: Tensor
    u: Tensor
    v: Tensor
    mask: Tensor
    n_uv: Tensor

    @property
    def empty(self) -> int:
        return int((self.n_u == 0).sum() + (self.n_uv == 0).sum())


def _readoff_sets(B_or: Pool, B_and: Pool, perm: Tensor, partner: Tensor, gate_type: Tensor
                  ) -> _ReadoffSets:
    pair = (gate_type != COPY).nonzero().squeeze(1)
    u, v = perm[pair], partner[pair]
    cols = B_and.columns(torch.cat([u, v]))                           # (d_and, 2P): used gates only
    mask = cols[:, :pair.numel()] * cols[:, pair.numel():]           # (d_and, P): N_uv
    return _ReadoffSets(B_or.counts(), pair, u, v, mask, mask.sum(0))


def _gate_readoffs(a_or: Tensor, a_and: Tensor, B_or: Pool, sets: _ReadoffSets, perm: Tensor,
                   gate_type: Tensor, centred: bool) -> Tensor:
    """Read-off values (T, m) of the gates built from the pool outputs a_or (T, d_or), a_and (T, d_and)."""
    copy = B_or.read(a_or) / sets.n_u.clamp(min=1)                   # (T, m): COPY(u) for all u
    if centred:
        copy = copy - a_or.mean(1, keepdim=True)
    values = copy[:, perm].clone()
    if sets.pair.numel():
        and_val = (a_and @ sets.mask) / sets.n_uv.clamp(min=1)
        if centred:
            and_val = and_val - a_and.mean(1, keepdim=True)
        is_or = gate_type[sets.pair] == OR
        or_val = copy[:, sets.u] + copy[:, sets.v] - and_val
        values[:, sets.pair] = torch.where(is_or, or_val, and_val)
    return values


def run_networks(circuit: Circuit, config: DeepConfig, x0: Tensor, *, networks: tuple[str, ...] = NETWORKS,
                 net_seed: int = 0, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                 wiring: str = "dense", progress: bool = False) -> dict[str, tuple[Tensor, int]]:
    """Factored forward passes of several networks on one connectivity, drawn once per layer:
    {network: (read-off values v_hat^l for l = 0..L, (L+1, T, m), number of empty read-off sets
    met (their read-off is 0))}. v_hat^0 = x0 (or ``superposed_readoffs``). naive_raw runs in
    float64. ``wiring`` (``WIRINGS``): how each layer's connectivity is drawn and multiplied
    ("sparse" costs O(connections) per layer). ``progress``: a tqdm bar over layers. On the CPU."""
    for network in networks:
        _check_network(network)
    dev = checks.device(device)
    m = circuit.n_features
    if x0.shape[-1] != m:
        raise ValueError(f"x0 must have {m} columns (n_features), got shape {tuple(x0.shape)}")
    types = {n: torch.float64 if n == "naive_raw" else dtype for n in networks}
    v = {n: x0.to(dev, types[n]) for n in networks}
    out = {n: [v[n].cpu()] for n in networks}
    empty = dict.fromkeys(networks, 0)
    for l in tqdm(range(1, circuit.depth + 1), disable=not progress, desc="network layers"):
        pools = wiring_of(wiring, config, m, l, net_seed)
        perm, partner, gate_type = (circuit.perm[l - 1].to(dev), circuit.partner[l - 1].to(dev),
                                    circuit.gate_type[l - 1].to(dev))
        cast = {}
        for t in set(types.values()):
            B_or, B_and = (P.to(dev, t) for P in pools)
            cast[t] = B_or, B_and, _readoff_sets(B_or, B_and, perm, partner, gate_type)
        for n in networks:
            a_or_t, b_or_t, a_and_t, b_and_t = config.thresholds(n)
            B_or, B_and, sets = cast[types[n]]
            a_or = _units(B_or.pre(v[n]), a_or_t, b_or_t)
            a_and = _units(B_and.pre(v[n]), a_and_t, b_and_t)
            v[n] = _gate_readoffs(a_or, a_and, B_or, sets, perm, gate_type, centred=n != "naive_raw")
            empty[n] += sets.empty
            out[n].append(v[n].cpu())
    return {n: (torch.stack(out[n]), empty[n]) for n in networks}


def run_network(circuit: Circuit, config: DeepConfig, x0: Tensor, *, network: str = "ec",
                net_seed: int = 0, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu", wiring: str = "dense") -> tuple[Tensor, int]:
    """``run_networks`` for one network: (values (L+1, T, m), number of empty read-off sets)."""
    return run_networks(circuit, config, x0, networks=(network,), net_seed=net_seed, dtype=dtype,
                        device=device, wiring=wiring)[network]


def explicit_mlp(circuit: Circuit, config: DeepConfig, *, network: str = "ec", net_seed: int = 0,
                 max_hidden: int = 20_000, weights: bool = True, wiring: str = "dense"
                 ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """The same network as explicit ReLU layers (float64; small sizes only), dense whatever the
    ``wiring`` its connectivity was drawn with.

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
        B_or, B_and = (P.dense() for P in wiring_of(wiring, config, m, l, net_seed))
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


def superposed_readoffs(x0: Tensor, d_input: int, seed: int) -> Tensor:
    """v_hat^0 = Phi^T Phi b (T, m) float32 of inputs b = x0 (T, m) in {0, 1} embedded as x = Phi b in
    d_input dimensions (``uand.embedding_columns``, unit Gaussian columns from ``seed``); only the
    overlaps with the features some input uses are built (``uand.embedding_gram``)."""
    checks.positive_int("d_input", d_input)
    used = x0.bool().any(0).nonzero().squeeze(1)
    gram = uand.embedding_gram(used, x0.shape[1], d_input, seed)      # (m, F)
    return x0[:, used].float() @ gram.T


def and_on_errors(values: Tensor, truth: Tensor, circuit: Circuit) -> pd.DataFrame:
    """The AND path: per layer l = 1..L, how many AND gate values are 1 (``and_on``), and the largest
    |v_hat - 1| and the fraction above 1/2 among them (``and_on_max``, ``and_on_ber``; NaN if none).
    values (L+1, T, m) float, truth (L+1, T, m) bool."""
    rows = []
    for l in range(1, values.shape[0]):
        on = truth[l] & (circuit.gate_type[l - 1] == AND)[None, :]
        err = (values[l][on].double() - 1).abs()
        rows.append({"layer": l, "and_on": int(on.sum()),
                     "and_on_max": float(err.max()) if err.numel() else float("nan"),
                     "and_on_ber": float((err > 0.5).double().mean()) if err.numel() else float("nan")})
    return pd.DataFrame(rows)


def depth_experiment(n_features: int, depth: int, config: DeepConfig, *, n_active: int = 3,
                     n_inputs: int = 128, gate_prob: float = 0.1, net_seed: int = 0,
                     networks: tuple[str, ...] = NETWORKS, generator: torch.Generator,
                     device: str | torch.device = "cpu", twin_and_prob: float | None = None,
                     wiring: str = "dense", d_input: int | None = None, progress: bool = False,
                     min_active: int = 0) -> pd.DataFrame:
    """Spec §5.4 NB4: one circuit, kept sparse inputs, every network on the same connectivity.

    The circuit is drawn from ``net_seed`` (network randomness), the inputs from ``generator``.
    ``twin_and_prob``: a ``twin_circuit`` of n_features gates with that fraction of twin ANDs and
    twinned inputs (n_active signals on, 2 n_active gates); None: a ``random_circuit``.
    ``d_input``: inputs in superposition in d_input dimensions (``superposed_readoffs``, embedding
    from net_seed); None: basis-aligned. ``wiring``, ``progress``: as in ``run_networks``;
    ``min_active``: as in ``sparse_inputs``.
    Returns ``layer_errors`` rows joined with ``and_on_errors``, with a ``network`` column.
    naive_raw runs in float64.
    """
    gen = torch.Generator().manual_seed(int(net_seed))
    if twin_and_prob is None:
        circuit = random_circuit(n_features, depth, gate_prob=gate_prob, generator=gen)
    else:
        if n_features % 2:
            raise ValueError(f"a twin circuit needs an even n_features, got {n_features}")
        circuit = twin_circuit(n_features // 2, depth, gate_prob=gate_prob, twin_and_prob=twin_and_prob,
                               generator=gen)
    x0, truth = sparse_inputs(circuit, n_inputs, n_active, generator=generator,
                              twinned=twin_and_prob is not None, min_active=min_active)
    v0 = x0 if d_input is None else superposed_readoffs(x0, d_input, net_seed)
    runs = run_networks(circuit, config, v0, networks=networks, net_seed=net_seed, device=device,
                        wiring=wiring, progress=progress)
    return pd.concat([layer_errors(values, truth).merge(and_on_errors(values, truth, circuit), on="layer")
                      .assign(network=network) for network, (values, _) in runs.items()], ignore_index=True)


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
                  device: str | torch.device = "cpu", by_seed: bool = False) -> pd.DataFrame:
    """sigma_and on the (m, d) grid, averaged (in variance) over network seeds, with theory.

    Columns: m, d, sigma, sigma_theory, x = m / d^1.5, var = sigma^2. ``by_seed``: one row per
    (m, d, network seed) instead (column ``seed``, no average; ``seed_average`` averages it).
    """
    rows = []
    for d in d_grid:
        for m in n_features_grid:
            for s in net_seeds:
                sigma = and_noise(int(m), int(d), n_shared=n_shared, n_active=n_active,
                                  n_inputs=n_inputs, net_seed=s, generator=generator, device=device)
                rows.append({"m": int(m), "d": int(d), "seed": s, "var": sigma ** 2,
                             "sigma_theory": and_noise_theory(int(m), int(d), n_shared, n_active)})
    df = pd.DataFrame(rows)
    return df.assign(sigma=np.sqrt(df["var"])) if by_seed else seed_average(df)


def seed_average(by_seed: pd.DataFrame) -> pd.DataFrame:
    """``capacity_grid``'s table from its ``by_seed`` form: the variance averaged over seeds."""
    df = by_seed.groupby(["m", "d"], sort=False, as_index=False).agg(
        var=("var", "mean"), sigma_theory=("sigma_theory", "first"))
    df["sigma"] = np.sqrt(df["var"])
    df["x"] = df["m"] / df["d"] ** 1.5
    return df[["m", "d", "sigma", "sigma_theory", "x", "var"]]


def crossing_width(by_seed: pd.DataFrame, sigma_target: float, ratio: float, *,
                   relus_per_width: int = 4, n_boot: int = 2000, seed: int = 0) -> fits.Interval:
    """log10 of the width d at which the circuit width m_max(d) reaches ``ratio`` times the network's
    relus_per_width d ReLUs per layer, extrapolated from the fit log sigma^2 = c + a log m + b log d
    of ``capacity_grid(..., by_seed=True)`` (m_max: sigma(m_max, d) = sigma_target), with a 95 %
    ``fits.bootstrap`` interval over network seeds and the (m, d) points of each. Replicates in
    which m_max grows no faster than d (no crossing) are dropped."""
    if not sigma_target > 0 or not ratio > 0:
        raise ValueError(f"sigma_target and ratio must be > 0, got {sigma_target!r}, {ratio!r}")
    checks.positive_int("relus_per_width", relus_per_width)
    groups = [np.column_stack([np.log(g["m"]), np.log(g["d"]), np.log(g["var"])])
              for _, g in by_seed.groupby("seed")]

    def statistic(rows: np.ndarray) -> float:
        X = np.column_stack([np.ones(len(rows)), rows[:, 0], rows[:, 1]])
        if np.linalg.matrix_rank(X) < 3:                              # a replicate with one m or one d
            return float("nan")
        c, a, b = np.linalg.lstsq(X, rows[:, 2], rcond=None)[0]
        growth = 1 + b / a                                            # < 0 iff m_max / d grows with d
        if not a > 0 or not growth < 0:
            return float("nan")
        log_d = ((2 * np.log(sigma_target) - c) / a - np.log(ratio * relus_per_width)) / growth
        return float(log_d / np.log(10))

    return fits.bootstrap(groups, statistic, n_boot=n_boot, seed=seed)


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
