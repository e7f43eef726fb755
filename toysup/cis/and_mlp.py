"""Pairwise AND by one hidden ReLU layer: trained against constructed (cis spec §2, §6).

Task: m boolean features, exactly s on; targets y_ij = x_i x_j for the P = m(m-1)/2 pairs i < j.
Every network here is  h = ReLU(W_in x + b_in) (d neurons),  y_hat = W_out h + b_out  (P outputs);
W_out's rows are the read-off vectors r_ij.

Constructions (no training), built as explicit ``MLP``s, so W_out is the full (P, d) read-off matrix
(``readoff_matrix``, small m only; chapters 10-12 evaluate the same read-offs for sampled pairs
without it, ``toysup.cis.uand.and_readout``):
* sparse U-AND (spec §2.1): the weights of ``toysup.cis.uand``, W_in ~ Bern(p) 0/1, p = sqrt(K/d),
  b_in = -1, r_ij = (W_:i * W_:j) / <W_:i, W_:j>, b_out = 0. [L]
* superposed U-AND (spec §3.1): inputs Phi x with Phi (d0, m) random unit columns, W_in = B Phi^T. [R]
* no superposition (a baseline, ours): d neurons compute d of the ANDs exactly, the prior for the rest.
* dense U-AND (spec §6, from a Julia reproduction [L]): W_in ~ Rademacher (+-1), b_in = 0,
  r_ij = sign(w_ki w_kj) / (d c_D(s)), c_D(s) = (h(2) - 2 h(0) + h(-2)) / 4, h(a) = E ReLU(a + Z),
  Z the sum of s - 2 further Rademacher weights. Unbiased; error variance ~ s / (c_D^2 d).

Trained: ``train`` trains k instances at once (instances axis first: W_in (k, d, m), b_in (k, d),
W_out (k, P, d), b_out (k, P)) with Adam on the L_q error (mean_batch,pairs |y_hat - y|^q)^(1/q),
q per instance (q = 2 is root-mean-square; large q approaches the worst-case error, the paper's
epsilon-accuracy). Instances share the input batches and nothing else.

``compare`` scores any list of named networks on one test set (``error_table``, ``structure``).
"""
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm   # plain text bar: tqdm.auto warns when ipywidgets is missing

from toysup import checks
from toysup.cis import uand


def all_pairs(n_features: int) -> Tensor:
    """All pairs i < j as a (P, 2) long tensor, P = m(m-1)/2, in row-major order."""
    checks.positive_int("n_features", n_features)
    if n_features < 2:
        raise ValueError(f"n_features must be >= 2 to have pairs, got {n_features}")
    return torch.combinations(torch.arange(n_features), 2)


def and_targets(x: Tensor, pairs: Tensor) -> Tensor:
    """y_ij = x_i x_j: (T, m), (P, 2) -> (T, P)."""
    return x[:, pairs[:, 0]] * x[:, pairs[:, 1]]


@dataclass(frozen=True)
class MLP:
    """One hidden ReLU layer with a linear read-out; unbatched shapes W_in (d, m), W_out (P, d).

    With ``embedding`` Phi (d0, m) the boolean features enter in superposition, x -> Phi x in R^{d0},
    and W_in is (d, d0); the network still takes the boolean x (T, m) and embeds it first."""

    W_in: Tensor
    b_in: Tensor
    W_out: Tensor
    b_out: Tensor
    embedding: Tensor | None = None

    def hidden(self, x: Tensor) -> Tensor:
        """h = ReLU(W_in Phi x + b_in) (Phi = identity without an embedding): (T, m) -> (T, d)."""
        if self.embedding is not None:
            x = x @ self.embedding.T
        return torch.relu(x @ self.W_in.T + self.b_in)

    def __call__(self, x: Tensor) -> Tensor:
        """y_hat = W_out h + b_out: (T, m) -> (T, P)."""
        return self.hidden(x) @ self.W_out.T + self.b_out


def _rademacher_sum(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Values z = 2k - n and probabilities C(n, k) / 2^n of a sum of n independent +-1 signs."""
    z = np.array([2 * k - n for k in range(n + 1)], float)
    w = np.array([math.comb(n, k) for k in range(n + 1)], float) / 2 ** n
    return z, w


def dense_gain(n_active: int) -> float:
    """c_D(s) = (h(2) - 2 h(0) + h(-2)) / 4 with h(a) = E ReLU(a + Z), Z a sum of s-2 signs."""
    checks.positive_int("n_active", n_active)
    if n_active < 2:
        raise ValueError(f"n_active must be >= 2 for a pair to be on, got {n_active}")
    z, w = _rademacher_sum(n_active - 2)

    def h(a: float) -> float:
        return float((w * np.maximum(a + z, 0)).sum())

    return (h(2) - 2 * h(0) + h(-2)) / 4


def readoff_matrix(kind: str, W_in: Tensor, pairs: Tensor, *, n_active: int = 2,
                   max_entries: int = 20_000_000) -> Tensor:
    """Explicit read-off vectors (P, d) of a construction (small sizes; export and tests only).

    kind "sparse": r_ij = W_:i W_:j / |N_ij|;  kind "dense": sign(w_i w_j) / (d c_D(s)).
    """
    if pairs.shape[0] * W_in.shape[0] > max_entries:
        raise ValueError(f"P*d = {pairs.shape[0] * W_in.shape[0]} exceeds max_entries={max_entries}")
    prod = (W_in[:, pairs[:, 0]] * W_in[:, pairs[:, 1]]).T
    if kind == "sparse":
        return prod / prod.sum(1, keepdim=True).clamp(min=1)
    if kind == "dense":
        return torch.sign(prod) / (W_in.shape[0] * dense_gain(n_active))
    raise ValueError(f"kind must be 'sparse' or 'dense', got {kind!r}")


def dense_weights(n_features: int, d_hidden: int, generator: torch.Generator) -> Tensor:
    """W_in (d_hidden, n_features) float32 of dense U-AND: i.i.d. Rademacher (+-1) signs."""
    checks.positive_int("n_features", n_features)
    checks.positive_int("d_hidden", d_hidden)
    return torch.randint(0, 2, (d_hidden, n_features), generator=generator).float() * 2 - 1


def construct(kind: str, n_features: int, d_hidden: int, *, n_shared: float = 16.0,
              n_active: int = 2, d_input: int | None = None, generator: torch.Generator) -> MLP:
    """A constructed network as an explicit ``MLP`` (its W_out is the (P, d) read-off matrix).

    kind "sparse": W_in = B = ``uand.connection_matrix`` with p = sqrt(K / d) (K = n_shared);
    kind "superposed" (U2, spec §3.1): the same B, inputs embedded by Phi (d_input, m) =
    ``uand.feature_embedding`` (its seed drawn from ``generator`` after B), W_in = B Phi^T (d, d0),
    the same bias -1 and read-offs; kind "dense": random signs, read-off gain c_D(n_active)."""
    pairs = all_pairs(n_features)
    if kind not in ("sparse", "superposed", "dense"):
        raise ValueError(f"kind must be 'sparse', 'superposed' or 'dense', got {kind!r}")
    if (kind == "superposed") != (d_input is not None):
        raise ValueError(f"d_input must be given for kind 'superposed' only, got {d_input!r} for {kind!r}")
    embedding = None
    if kind == "dense":
        W_in = dense_weights(n_features, d_hidden, generator)
        b_in = torch.zeros(d_hidden)
    else:
        p = uand.connect_prob(n_shared, d_hidden)
        W_in = uand.connection_matrix(n_features, d_hidden, p, generator).float()
        b_in = -torch.ones(d_hidden)
    W_out = readoff_matrix("dense" if kind == "dense" else "sparse", W_in, pairs, n_active=n_active)
    if kind == "superposed":
        checks.positive_int("d_input", d_input)
        embedding = uand.feature_embedding(n_features, d_input,
                                           int(torch.randint(2 ** 31, (1,), generator=generator)))
        W_in = W_in @ embedding.T
    return MLP(W_in, b_in, W_out, torch.zeros(pairs.shape[0]), embedding)


def pair_prior(n_features: int, n_active: int) -> float:
    """pi = E[y_ij] = s(s-1) / (m(m-1)): the probability that a given pair is on, exactly-s inputs."""
    checks.positive_int("n_active", n_active)
    if n_active > n_features:
        raise ValueError(f"n_active must be in [1, n_features={n_features}], got {n_active}")
    return n_active * (n_active - 1) / (n_features * (n_features - 1))


def no_superposition(n_features: int, d_hidden: int, n_active: int) -> MLP:
    """The same width without superposition: neuron k computes the AND of pair k exactly,
    ReLU(x_i + x_j - 1), for the first min(d, P) pairs in row-major order; every other output is
    the constant prior E[y_ij] = s(s-1) / (m(m-1)) (the MSE-best constant for exactly-s inputs).
    Neurons beyond P read nothing. Shapes as ``MLP``: W_in (d, m), W_out (P, d)."""
    pairs = all_pairs(n_features)
    checks.positive_int("d_hidden", d_hidden)
    prior = pair_prior(n_features, n_active)
    n_exact = min(d_hidden, pairs.shape[0])
    W_in = torch.zeros(d_hidden, n_features)
    W_in[torch.arange(n_exact)[:, None], pairs[:n_exact]] = 1.0
    W_out = torch.zeros(pairs.shape[0], d_hidden)
    W_out[torch.arange(n_exact), torch.arange(n_exact)] = 1.0
    b_out = torch.full((pairs.shape[0],), prior)
    b_out[:n_exact] = 0.0
    return MLP(W_in, -torch.ones(d_hidden), W_out, b_out)


def no_superposition_mse(n_features: int, d_hidden, n_active: int) -> np.ndarray:
    """Expected MSE of ``no_superposition`` on exactly-s inputs (exact): u pi (1 - pi), with
    pi = s(s-1) / (m(m-1)) the probability that a pair is on and u = 1 - min(d, P) / P the fraction
    of pairs answered by the prior. d_hidden: an int or an array of widths (same shape out)."""
    P = all_pairs(n_features).shape[0]
    prior = pair_prior(n_features, n_active)
    return (1 - np.minimum(np.asarray(d_hidden, float), P) / P) * prior * (1 - prior)


@dataclass
class TrainedMLPs:
    """Trained instances (one ``MLP`` each), per-step loss (n_steps, k) and the loss powers."""

    models: list[MLP]
    history: Tensor
    loss_powers: list[float]


def train(n_features: int, d_hidden: int, n_active: int, *, loss_powers=(2.0, 8.0),
          n_steps: int = 2000, batch: int = 512, lr: float = 3e-3, seed: int = 0,
          data_seed: int = 1, frozen_input: MLP | None = None, progress: bool = True,
          device: str | torch.device = "cpu") -> TrainedMLPs:
    """Train k = len(loss_powers) MLPs side by side with Adam (Kingma & Ba) on fresh exactly-s
    batches; the objective is the sum over instances of (mean |y_hat - y|^q)^(1/q).

    Instance i draws its initial weights (uniform +-1/sqrt(fan_in), as torch.nn.Linear) from
    seed + i; ``data_seed`` draws the input batches. The learning rate decays by a cosine from lr to lr/10.
    With ``frozen_input`` (an ``MLP`` with W_in (d_hidden, m), b_in (d_hidden,), no embedding) every
    instance keeps that first layer fixed and trains only W_out, b_out (spec §10, NB6).
    """
    checks.positive_int("n_steps", n_steps)
    checks.positive_int("batch", batch)
    checks.positive_int("d_hidden", d_hidden)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    q = torch.as_tensor(loss_powers, dtype=torch.float32).reshape(-1)
    if q.numel() == 0 or (q < 1).any():
        raise ValueError(f"loss_powers must be a non-empty list of values >= 1, got {loss_powers!r}")
    pairs = all_pairs(n_features)
    k, m, d, P = q.numel(), n_features, d_hidden, pairs.shape[0]
    data = torch.Generator().manual_seed(data_seed)

    def init(i: int) -> list[Tensor]:
        gen = torch.Generator().manual_seed(seed + i)        # instance i's own weights
        return [(torch.rand(*shape, generator=gen) * 2 - 1) / math.sqrt(fan_in)
                for shape, fan_in in [((d, m), m), ((d,), m), ((P, d), d), ((P,), d)]]

    dev = checks.device(device)
    params = [torch.stack(ws).to(dev) for ws in zip(*(init(i) for i in range(k)))]
    if frozen_input is not None:
        if (frozen_input.embedding is not None or frozen_input.W_in.shape != (d, m)
                or frozen_input.b_in.shape != (d,)):
            raise ValueError(f"frozen_input must have W_in ({d}, {m}), b_in ({d},) and no embedding, got "
                             f"W_in {tuple(frozen_input.W_in.shape)}, b_in {tuple(frozen_input.b_in.shape)}")
        params[:2] = [w.to(dev, torch.float32).expand(k, *w.shape).clone()
                      for w in (frozen_input.W_in, frozen_input.b_in)]
    trained = params[2:] if frozen_input is not None else params
    for p in trained:
        p.requires_grad_()
    q, pairs = q.to(dev), pairs.to(dev)
    opt = torch.optim.Adam(trained, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t / n_steps)))
    history = torch.empty(n_steps, k)
    bar = tqdm(range(n_steps), disable=not progress, desc="training AND MLPs")
    for step in bar:
        x = uand.sample_exactly_s(batch, m, n_active, data).to(dev)
        y = and_targets(x, pairs)
        W_in, b_in, W_out, b_out = params
        h = torch.relu(torch.einsum("kdm,bm->kbd", W_in, x) + b_in[:, None])
        y_hat = torch.einsum("kpd,kbd->kbp", W_out, h) + b_out[:, None]
        err = (y_hat - y).abs()
        loss = (err ** q[:, None, None]).mean(dim=(1, 2)) ** (1 / q)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        sched.step()
        history[step] = loss.detach().cpu()
        if step % 100 == 0:
            bar.set_postfix(loss=[round(v, 4) for v in loss.tolist()])
    models = [MLP(*(p[i].detach().cpu().clone() for p in params)) for i in range(k)]
    return TrainedMLPs(models, history, q.tolist())


def dense_noise_theory(n_active: int, d_hidden):
    """RMS read-off error of dense U-AND on pairs with neither input on (exact):
    sqrt(E[ReLU(Z_s)^2] / (d c_D(s)^2)), Z_s a sum of s Rademacher signs."""
    z, w = _rademacher_sum(n_active)
    second = float((w * np.maximum(z, 0) ** 2).sum())
    return np.sqrt(second / (np.asarray(d_hidden, float) * dense_gain(n_active) ** 2))


def error_table(model: MLP, x: Tensor, pairs: Tensor) -> pd.DataFrame:
    """|y_hat - y| by case (both on / one on / none on / all): mean, q99, q99.9, max, and the
    fraction of entries with error > 0.5 (a wrong bit after rounding). One row per case."""
    y = and_targets(x, pairs)
    err = (model(x) - y).abs()
    n_on = x[:, pairs[:, 0]] + x[:, pairs[:, 1]]
    rows = []
    for case, sel in [("both on", n_on == 2), ("one on", n_on == 1), ("none on", n_on == 0),
                      ("all", torch.ones_like(n_on, dtype=torch.bool))]:
        if sel.any():
            rows.append({"case": case, **error_summary(err[sel])})
    return pd.DataFrame(rows)


def error_summary(err: Tensor) -> dict[str, float]:
    """Absolute errors of any shape -> mean, q99, q99.9, max, wrong_bits (fraction > 1/2), mse."""
    if err.numel() == 0:
        raise ValueError("err must hold at least one error, got an empty tensor")
    e = err.detach().reshape(-1).double().cpu()
    qs = np.quantile(e.numpy(), [0.99, 0.999])
    return {"mean": float(e.mean()), "q99": float(qs[0]), "q999": float(qs[1]), "max": float(e.max()),
            "wrong_bits": float((e > 0.5).double().mean()), "mse": float((e ** 2).mean())}


def structure(model: MLP, x: Tensor, *, rel_tol: float = 0.01) -> dict[str, float]:
    """Weight sparsity and neuron use of a network on inputs x (T, m).

    input_density: fraction of |W_in| entries above rel_tol * max|W_in|;
    readoff_density: the same for W_out; neurons_used: neurons active on some input AND with a
    read-off column above rel_tol * max|W_out|; neurons_per_output: mean participation ratio
    (sum_k |r_k|)^2 / sum_k r_k^2 of the read-off vectors (K for sparse U-AND, ~d if dense).
    """
    W_in, W_out = model.W_in.abs(), model.W_out.abs()
    active = (model.hidden(x) > 0).any(0)
    reads = W_out.max(0).values > rel_tol * W_out.max()
    pr = W_out.sum(1) ** 2 / (W_out ** 2).sum(1).clamp(min=1e-30)
    return {"input_density": float((W_in > rel_tol * W_in.max()).float().mean()),
            "readoff_density": float((W_out > rel_tol * W_out.max()).float().mean()),
            "neurons_used": int((active & reads).sum()), "neurons": int(W_in.shape[0]),
            "neurons_per_output": float(pr.mean())}


def construction_theory(n_features: int, widths, n_active: int, x: Tensor, *,
                        n_shared: float = 16.0, net_seeds=(0, 1, 2, 3, 4)) -> pd.DataFrame:
    """Both constructions against their closed forms, averaged over network seeds.

    Sparse: mean signed error on pairs with one input on vs (s-1) p, p = sqrt(K/d)
    (``uand.readoff_bias_theory``). Dense: RMS error on
    pairs with neither input on vs ``dense_noise_theory``. The spread between networks is large at
    small m (|N_il| is Poisson(K) for the pair of on features), hence the seeds.
    Columns: d, sparse_bias, sparse_se, sparse_theory, dense_rms, dense_se, dense_theory.
    """
    pairs = all_pairs(n_features)
    y = and_targets(x, pairs)
    n_on = x[:, pairs[:, 0]] + x[:, pairs[:, 1]]
    rows = []
    for d in widths:
        bias, rms = [], []
        for s in net_seeds:
            gen = torch.Generator().manual_seed(int(s))
            sparse = construct("sparse", n_features, int(d), n_shared=n_shared, generator=gen)
            dense = construct("dense", n_features, int(d), n_active=n_active, generator=gen)
            bias.append(float((sparse(x) - y)[n_on == 1].mean()))
            rms.append(float((dense(x) - y)[n_on == 0].pow(2).mean().sqrt()))
        n = len(net_seeds)
        rows.append({"d": int(d), "sparse_bias": np.mean(bias),
                     "sparse_se": np.std(bias, ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                     "sparse_theory": uand.readoff_bias_theory(
                         n_active, uand.connect_prob(n_shared, int(d)))["one on"],
                     "dense_rms": np.mean(rms),
                     "dense_se": np.std(rms, ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                     "dense_theory": float(dense_noise_theory(n_active, d))})
    return pd.DataFrame(rows)


def constructions(n_features: int, widths, *, n_active: int, n_shared: float, seed: int
                  ) -> list[tuple[str, int, MLP]]:
    """Both constructions at every width: [("sparse U-AND", d, MLP), ("dense U-AND", d, MLP), ...].

    Width d draws both networks, sparse first, from one generator seeded with seed + d."""
    networks = []
    for d in widths:
        gen = torch.Generator().manual_seed(seed + d)
        networks.append(("sparse U-AND", d, construct("sparse", n_features, d, n_shared=n_shared,
                                                      n_active=n_active, generator=gen)))
        networks.append(("dense U-AND", d, construct("dense", n_features, d, n_active=n_active,
                                                     generator=gen)))
    return networks


def compare(networks: list[tuple[str, int, MLP]], x: Tensor) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score named networks (name, d, MLP) on the same inputs x (T, m).

    Returns (summary, by_case): summary has one row per network with columns network, d, the
    ``error_table`` row "all" and the ``structure`` entries; by_case holds every ``error_table``
    row with network and d columns."""
    pairs = all_pairs(x.shape[1])
    rows, by_case = [], []
    for name, d, model in networks:
        table = error_table(model, x, pairs).set_index("case")
        rows.append({"network": name, "d": d, **table.loc["all"].to_dict(), **structure(model, x)})
        by_case.append(table.reset_index().assign(network=name, d=d))
    return pd.DataFrame(rows), pd.concat(by_case, ignore_index=True)
