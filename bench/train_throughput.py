"""Training throughput of toysup.persian_rug.train.fit, where a step's time goes, time to a target
loss against the paper's protocol, and the steps the convergence criterion chooses.

Sections (each prints one table; times are the fastest of ``--repeats`` timed runs after a warm-up):
  throughput  ms per model-step at p = 0.045, r = 1/4, batch 1024, for
              * blocked  — ``fit`` as it is: k instances per tensor, the step's products in blocks of
                           instances (``train.instance_blocks``);
              * whole    — ``fit`` with one block of all k instances (bmm over the whole tensor);
              * loop     — ``fit`` called once per model (k = 1);
              * reference— a per-model loop of the usual PyTorch implementation (dense matmuls, two
                           uniform draws per entry, autograd, torch.optim.Adam);
              and a step against two floors at the matmul peak measured in the same run: the dense
              6·B·n·m flops of autograd, and (2 + 4f)·B·n·m, f the measured fraction of outputs on
              (the backward products need only those). These columns time fresh fits, whose first
              steps have f ≈ 0.5, so ``model.sparse_output`` keeps the backward dense; the columns
              "trained" and "trained loop" time the same step (``train._blocked_step`` and Adam) from
              a model trained 1,000 steps (k copies of it), where f is the f shown and the sparse
              backward runs wherever ``model.sparse_output`` chooses it (f below the machine's
              measured crossover for the block's shape, ``calibrate.thresholds``, printed when measured).
  profile     one step's parts at n = 1024 after 1,000 steps: sampling, the sparse encoder, the dense
              and the sparse backward products (compacting the active outputs, embedding_bag).
  blocks      ms per model-step against the instances per block, n = 64…2048, p = 0.045 and 0.2: where
              train.BLOCK_FLOATS comes from.
  input       ms per loss_and_grads call on the sparse and on the dense input path (model.residual)
              at n = 256…2048, r = 0.05, 0.25 and 0.5, p = 0.01…0.4, one instance: where the thresholds
              DENSE_INPUT and DENSE_INPUT_LARGE (the densities above which the dense path runs) come from.
  transpose   ms per diag(x)ᵀ·∂h, the sparse path's encoder gradient, from the sorted entries against
              one bmm on the dense x, n = 64…2048, r = 0.1 and 0.25, p = 0.01…0.1, against the path
              that the machine's measured crossover (``calibrate.thresholds``) chooses.
  allocator   ms per model-step and minor page faults per step of ``fit``, with glibc's malloc defaults
              and with ``allocator.retain_freed_memory`` (each in a fresh process), n = 256…2048.
  target      wall time for the held-out loss that ``fit``'s default (3,000 steps) reaches, with the
              paper's protocol (constant lr 3e-3/√n, Adam, fresh batch each step) — long.
  plateau     steps the convergence criterion (TrainConfig.plateau = 0.005, min_steps = --min-steps)
              chooses at several n — long.
  activations ms per step of ``fit`` for every activation of the registry, chapter 4's layout
              (r = 1/4, batch 512, p = 0.02, 0.05, 0.1, 0.2 × 2 seeds = 8 instances) at n = 256 and
              512, and TopK's mask (``activations.topk_mask``, one unsorted topk per distinct K)
              against one sorted topk of the largest K for all instances, on a (4, 512, 512) block.
  compile     ms per loss-and-gradients call of the ReLU model from a model trained 1,000 steps (k copies):
              ``model.loss_and_grads`` (the sparse paths as chosen) against ``torch.compile`` of one
              dense step (forward, mask, the same four gradients; inductor fuses the elementwise
              passes), with the compile time and the largest relative difference of the gradients.

Run:  .venv/bin/python bench/train_throughput.py [throughput profile blocks input transpose allocator target
      plateau activations compile] [--threads 2]
"""
import argparse
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from toysup import allocator
from toysup.persian_rug import activations as acts
from toysup.persian_rug import data, evaluate, model, train

P, RATIO, BATCH = 0.045, 0.25, 1024


def matmul_peak(seconds: float = 1.0) -> float:
    """GFLOP/s of a 2048×2048 by 2048×2048 float32 matmul on this machine, best of repeats."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best, start = math.inf, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048 ** 3 / best / 1e9


def fastest(run: Callable[[], object], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``run`` after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def fit_run(n: int, k: int, steps: int, *, whole: bool = False, block_floats: int | None = None,
            prob: float = P, seed: int = 0) -> Callable[[], object]:
    """``fit`` of k models at (prob, RATIO); whole: one block of all k instances; block_floats: the
    block rule's float budget instead of ``train.BLOCK_FLOATS``."""
    cfg = model.AutoencoderConfig(n, model.hidden_width(n, RATIO), k)
    config = train.TrainConfig(n_steps=steps, batch=BATCH)

    def run() -> object:
        saved = train.BLOCK_FLOATS
        train.BLOCK_FLOATS = 2 ** 62 if whole else block_floats or saved
        try:
            return train.fit(cfg, prob, config, seed=seed, progress=False)
        finally:
            train.BLOCK_FLOATS = saved
    return run


def reference_run(n: int, steps: int, lr: float = 1e-3, seed: int = 0):
    """The usual implementation, one model; returns (w_in, w_out, b) after ``steps`` steps."""
    m = model.hidden_width(n, RATIO)
    gen = torch.Generator().manual_seed(seed)
    w_in = ((torch.rand(m, n, generator=gen) * 2 - 1) / n ** 0.5).requires_grad_()
    w_out = ((torch.rand(n, m, generator=gen) * 2 - 1) / m ** 0.5).requires_grad_()
    b = ((torch.rand(n, generator=gen) * 2 - 1) / m ** 0.5).requires_grad_()
    opt = torch.optim.Adam([w_in, w_out, b], lr=lr, eps=1e-7)

    def run(n_steps: int = steps) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        for _ in range(n_steps):
            u = torch.rand(BATCH, n, generator=gen)
            x = torch.where(torch.rand(BATCH, n, generator=gen) < P, u, 0.0)
            loss = ((torch.relu(x @ w_in.T @ w_out.T + b) - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return w_in, w_out, b
    return run


def active_fraction(params: model.AutoencoderParams) -> float:
    """f: the fraction of pre-activations > 0 on one fresh batch."""
    gens = data.make_generators([123] * params.config.n_instances, params.b.device)
    batch = data.sample_sparse(torch.full((params.config.n_instances,), P, dtype=torch.float64),
                               BATCH, params.config.n_features, gens)
    h = batch.times(params.encoder.reshape(-1, params.config.d_hidden)).view(
        params.config.n_instances, BATCH, params.config.d_hidden)
    pre = torch.baddbmm(params.b[:, None, :], h, params.decoder.transpose(1, 2))
    return float((pre > 0).float().mean())


def trained_run(params: model.AutoencoderParams, k: int, steps: int) -> Callable[[], object]:
    """``steps`` training steps of k copies of the one-instance ``params`` (train._blocked_step and a
    fused Adam at 1 % of lr₀, so the state, and f, stay those of the trained model)."""
    copies = params.select([0] * k)
    lr = train.TrainConfig().learning_rate(params.config.n_features) * 0.01
    opt = torch.optim.Adam(copies.tensors(), lr=lr, eps=1e-7, fused=True)
    probs = torch.full((k,), P, dtype=torch.float64)
    gens = data.make_generators(list(range(1, k + 1)), params.b.device)

    def run() -> object:
        with torch.no_grad():
            for _ in range(steps):
                train._blocked_step(copies, probs, gens, BATCH)
                opt.step()
        return copies
    return run


def throughput(args: argparse.Namespace, peak: float) -> None:
    print(f"\n## throughput: p = {P}, r = {RATIO}, batch {BATCH}; ms per model-step; fresh fits and, "
          "'trained', steps from a model trained 1,000 steps (f: its fraction of outputs on); the floors "
          "are for the trained step")
    print(f"{'n':>5} {'k':>3} {'blocked':>8} {'whole':>8} {'loop':>8} {'reference':>9} {'trained':>8} "
          f"{'tr. loop':>8} {'f':>6} {'step/6Bnm':>9} {'step/(2+4f)Bnm':>14} {'loop/blocked':>12} "
          f"{'tr. loop/tr.':>12} {'whole/blocked':>13}")
    for n in args.sizes:
        m = model.hidden_width(n, RATIO)
        state = fit_run(n, 1, 1000)().params
        f = active_fraction(state)
        steps = args.steps
        trained_one = fastest(trained_run(state, 1, steps), args.repeats) / steps
        for k in (1, args.many):
            blocked = fastest(fit_run(n, k, steps), args.repeats) / steps / k
            whole = blocked if k == 1 else fastest(fit_run(n, k, steps, whole=True), args.repeats) / steps / k
            loop = blocked if k == 1 else fastest(
                lambda: [fit_run(n, 1, steps, seed=i)() for i in range(k)], args.repeats) / steps / k
            ref = fastest(lambda: reference_run(n, steps)(), args.repeats) / steps
            trained = trained_one if k == 1 else fastest(trained_run(state, k, steps), args.repeats) / steps / k
            dense, sparse = 6 * BATCH * n * m, (2 + 4 * f) * BATCH * n * m
            print(f"{n:>5} {k:>3} {1e3 * blocked:>8.2f} {1e3 * whole:>8.2f} {1e3 * loop:>8.2f} "
                  f"{1e3 * ref:>9.2f} {1e3 * trained:>8.2f} {1e3 * trained_one:>8.2f} {f:>6.3f} "
                  f"{trained * peak * 1e9 / dense:>9.2f} {trained * peak * 1e9 / sparse:>14.2f} "
                  f"{loop / blocked:>12.2f} {trained_one / trained:>12.2f} {whole / blocked:>13.2f}")


def profile(args: argparse.Namespace) -> None:
    n, k = 1024, 1
    params = fit_run(n, k, 1000)().params
    m = params.config.d_hidden
    gens = data.make_generators([5], params.b.device)
    probs = torch.full((k,), P, dtype=torch.float64)
    batch = data.sample_sparse(probs, BATCH, n, gens)
    fwd = model.residual(params, batch)
    h, g = fwd.h, fwd.diff.clone()
    g.view(-1).index_put_((batch.flat,), torch.where(g.view(-1)[batch.flat] + batch.values > 0,
                                                     g.view(-1)[batch.flat], 0.0))   # the ReLU mask
    active = data.SparseBatch.of(g)
    nz = active.flat
    hidden, stack = h.reshape(k * BATCH, m), params.decoder.reshape(k * n, m)
    parts = {
        "sample a batch": lambda: data.sample_sparse(probs, BATCH, n, gens),
        "encoder products diag(x)·E and diag(x)ᵀ·∂h (fresh batch: sort included)":
            lambda: (lambda b: (b.times(params.encoder.reshape(k * n, m)), b.t_times(hidden)))(
                data.SparseBatch(batch.values, batch.flat, k, BATCH, n)),
        "forward (sparse encoder, dense decoder, ReLU)": lambda: model.residual(params, batch),
        "whole loss_and_grads (backward by model.sparse_output)": lambda: model.loss_and_grads(params, batch),
        "whole loss_and_grads, dense backward products": lambda: model.loss_and_grads(params, batch, sparse_grad=False),
        "dense backward products gᵀh and g·W_out": lambda: (torch.bmm(g.transpose(1, 2), h),
                                                            torch.bmm(g, params.decoder)),
        "sparse: compact the active outputs (SparseBatch.of)": lambda: data.SparseBatch.of(g),
        "sparse: g·W_out from the entries": lambda: data.SparseBatch(active.values, nz, k, BATCH, n).times(stack),
        "sparse: gᵀh (sort included)": lambda: data.SparseBatch(active.values, nz, k, BATCH, n).t_times(hidden),
    }
    print(f"\n## profile: n = {n}, m = {m}, batch {BATCH}, after 1,000 steps; "
          f"g non-zero on a fraction {nz.numel() / g.numel():.3f}; ms per call")
    for name, run in parts.items():
        print(f"{1e3 * fastest(run, 10 * args.repeats):>8.2f}  {name}")


def blocks(args: argparse.Namespace) -> None:
    print(f"\n## blocks: ms per model-step of fit against the instances per block (train.instance_blocks), "
          f"r = {RATIO}, batch {BATCH}; the rule's budget is {train.BLOCK_FLOATS} floats per block")
    for n, k in ((64, 16), (128, 16), (256, 16), (512, 8), (1024, 8), (2048, 4)):
        for prob in (P, 0.2):
            times = [f"{per}: {1e3 * fastest(fit_run(n, k, args.steps, block_floats=per * BATCH * n, prob=prob), args.repeats) / args.steps / k:6.2f}"
                     for per in (1, 2, 4, 8, 16) if per <= k]
            first = train.instance_blocks(k, BATCH, n)[0]
            chosen = first.stop - first.start
            print(f"n {n:>5} k {k:>3} p {prob:<5} chosen {chosen:>2} per block |  " + "  ".join(times))


def input_paths(args: argparse.Namespace) -> None:
    print(f"\n## input: ms per loss_and_grads call (batch {BATCH}, one instance, fresh batch each call); "
          f"the dense path runs above a density of {model.DENSE_INPUT} (below n = {model.LARGE_INPUT}), "
          f"{model.DENSE_INPUT_LARGE} (from there on)")
    print(f"{'n':>5} {'m':>4} {'p':>5} {'sparse':>8} {'dense':>8} {'sparse/dense':>12} {'chosen':>7}")
    for n in args.sizes:
        for ratio in (0.05, RATIO, 0.5):
            m = model.hidden_width(n, ratio)
            params = model.init_params(model.AutoencoderConfig(n, m, 1), data.make_generators([0], torch.device("cpu")))
            for p in (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.4):
                gens, probs = data.make_generators([1], torch.device("cpu")), torch.tensor([p], dtype=torch.float64)
                times = {path: fastest(lambda: model.loss_and_grads(
                    params, data.sample_sparse(probs, BATCH, n, gens), dense=path), 5 * args.repeats)
                    for path in (False, True)}
                chosen = "dense" if model.dense_input(data.sample_sparse(probs, BATCH, n, gens)) else "sparse"
                print(f"{n:>5} {m:>4} {p:>5} {1e3 * times[False]:>8.2f} {1e3 * times[True]:>8.2f} "
                      f"{times[False] / times[True]:>12.2f} {chosen:>7}")


def transpose_paths(args: argparse.Namespace) -> None:
    """The sparse path's encoder gradient diag(x)ᵀ·∂h: from the sorted entries (``SparseBatch.t_times``)
    against one bmm on the dense x, each on a fresh batch (the forward pass's ``block_rows`` built,
    as in training), and the path that ``model.dense_transpose`` chooses."""
    print(f"\n## transpose: ms per diag(x)ᵀ·∂h (batch {BATCH}, one block of k instances); the bmm runs above "
          "the machine's measured density d* for the block's shape (calibrate.thresholds)")
    print(f"{'n':>5} {'m':>4} {'k':>2} {'p':>5} {'entries':>8} {'bmm':>8} {'entries/bmm':>11} {'chosen':>7}")
    for n, k in ((64, 8), (256, 8), (512, 4), (1024, 2), (2048, 1)):
        for ratio in (0.1, RATIO):
            m = model.hidden_width(n, ratio)
            grad_h = torch.randn(k * BATCH, m)
            for p in (0.01, 0.02, 0.05, 0.1):
                gens, probs = data.make_generators(list(range(k)), torch.device("cpu")), torch.full((k,), p)
                pool = [data.sample_sparse(probs, BATCH, n, gens) for _ in range(5 * args.repeats + 1)]
                for batch in pool:
                    batch.block_rows                                    # built by the forward pass
                draws = iter(pool)              # each batch once: t_times keeps its sorted entries
                entries = fastest(lambda: next(draws).t_times(grad_h), 5 * args.repeats)
                draws = iter(pool)
                dense = fastest(lambda: torch.bmm(next(draws).dense().transpose(0, 1).transpose(1, 2),
                                                  grad_h.view(k, BATCH, m)), 5 * args.repeats)
                chosen = "bmm" if model.dense_transpose(pool[0], m) else "entries"
                print(f"{n:>5} {m:>4} {k:>2} {p:>5} {1e3 * entries:>8.2f} {1e3 * dense:>8.2f} "
                      f"{entries / dense:>11.2f} {chosen:>7}")


def fault_probe(n: int, k: int, steps: int) -> None:
    """Prints ms per model-step and minor page faults per step of one ``fit`` (after a warm-up fit)
    at probabilities spread over 0.02…0.4, the mix of a chapter's grid (run by ``allocation``)."""
    probs = ([0.02, 0.05, 0.1, 0.2, 0.4] * k)[:k]
    cfg = model.AutoencoderConfig(n, model.hidden_width(n, RATIO), k)
    train.fit(cfg, probs, train.TrainConfig(n_steps=5, batch=BATCH), progress=False)
    faults, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    train.fit(cfg, probs, train.TrainConfig(n_steps=steps, batch=BATCH), progress=False)
    seconds = time.perf_counter() - t0
    print(1e3 * seconds / steps / k, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps)


def allocation(args: argparse.Namespace) -> None:
    print(f"\n## allocator: fit at r = {RATIO}, batch {BATCH}, p over 0.02…0.4; glibc defaults "
          f"(${allocator.OPT_OUT}=1) against allocator.retain_freed_memory, each in a fresh process")
    print(f"{'n':>5} {'k':>3} {'default ms':>10} {'retained ms':>11} {'ratio':>6} {'default faults':>14} "
          f"{'retained faults':>15}")
    for n, k in ((256, 5), (512, 4), (1024, 2), (2048, 1)):
        results = []
        for opt_out in ("1", "0"):
            env = os.environ | {allocator.OPT_OUT: opt_out, "OMP_NUM_THREADS": str(args.threads)}
            out = subprocess.run([sys.executable, __file__, "allocator", "--threads", str(args.threads),
                                  "--probe", str(n), str(k), str(args.steps)],
                                 env=env, check=True, capture_output=True, text=True).stdout
            results.append([float(v) for v in out.split()[-2:]])
        (ms0, pf0), (ms1, pf1) = results
        print(f"{n:>5} {k:>3} {ms0:>10.2f} {ms1:>11.2f} {ms0 / ms1:>6.2f} {pf0:>14.0f} {pf1:>15.0f}")


def held_out(w_in: torch.Tensor, w_out: torch.Tensor, b: torch.Tensor) -> float:
    """Held-out loss of one model on the same 40,960 samples ``evaluate`` uses."""
    cfg = model.AutoencoderConfig(w_in.shape[1], w_in.shape[0], 1)
    params = model.AutoencoderParams(cfg, w_in.detach().T.contiguous()[None], w_out.detach()[None],
                                     b.detach()[None])
    return float(evaluate.expected_loss(params, P, seed=99)[0][0])


def target(args: argparse.Namespace) -> None:
    print("\n## target: wall time to the held-out loss of fit's default (3,000 steps)")
    print(f"{'n':>5} {'target loss':>11} {'fit s':>7} {'paper steps':>11} {'paper s':>8} {'ratio':>6}")
    for n in args.target_sizes:
        t0 = time.perf_counter()
        result = fit_run(n, 1, 3000)()
        fit_s = time.perf_counter() - t0
        p = result.params
        goal = held_out(p.W_in[0], p.W_out[0], p.b[0])
        run, steps, t0 = reference_run(n, 0, lr=3e-3 / math.sqrt(n)), 0, time.perf_counter()
        while steps < 60_000:
            weights = run(500)
            steps += 500
            if held_out(*weights) <= goal:
                break
        paper_s = time.perf_counter() - t0
        print(f"{n:>5} {goal:>11.5f} {fit_s:>7.1f} {steps:>11} {paper_s:>8.1f} {paper_s / fit_s:>6.1f}")


def plateau(args: argparse.Namespace) -> None:
    print(f"\n## plateau: TrainConfig(plateau=0.005, n_steps=cap, min_steps={args.min_steps}) against the fixed 3,000-step default, 2 seeds "
          "per n: the step each met the criterion (−1: the cap), its steps with the anneal, the criterion "
          "over the last quarter of those, and its held-out loss over the default's (same seed)")
    print(f"{'n':>5} {'cap':>6} {'criterion met':>14} {'steps':>12} {'final gain':>16} "
          f"{'loss / default':>15} {'plateau s':>9} {'default s':>9}")
    for n in args.plateau_sizes:
        cfg = model.AutoencoderConfig(n, model.hidden_width(n, RATIO), 2)
        t0 = time.perf_counter()
        config = train.TrainConfig(n_steps=args.cap, plateau=train.CONVERGED, min_steps=args.min_steps)
        result = train.fit(cfg, P, config, seed=0, progress=False)
        t1 = time.perf_counter()
        fixed = train.fit(cfg, P, train.TrainConfig(), seed=0, progress=False)
        t2 = time.perf_counter()
        ratio = (evaluate.expected_loss(result.params, P, seed=99)[0]
                 / evaluate.expected_loss(fixed.params, P, seed=99)[0])

        def show(values) -> str:
            return ", ".join(f"{float(v):.4g}" for v in values)
        print(f"{n:>5} {args.cap:>6} {show(result.plateau_steps):>14} {show(result.steps):>12} "
              f"{show(result.plateau_gain()):>16} {show(ratio):>15} {t1 - t0:>9.0f} {t2 - t1:>9.0f}")


def sorted_topk_mask(pre: torch.Tensor, n_kept: torch.Tensor) -> torch.Tensor:
    """The reference for ``activations.topk_mask``: one sorted topk of the largest K, ranks cut per instance."""
    k_max = int(n_kept.max())
    idx = torch.topk(pre, k_max, dim=-1, sorted=True).indices
    rank_ok = torch.arange(k_max) < n_kept[:, None, None]
    return torch.zeros_like(pre).scatter_(-1, idx, rank_ok.to(pre.dtype).expand_as(idx))


def activation_steps(args: argparse.Namespace) -> None:
    probs = [0.02, 0.05, 0.1, 0.2] * 2
    print(f"\n## activations: ms per step of fit (k = {len(probs)}, batch 512, {args.steps} steps), chapter 4's layout")
    print(f"{'activation':>10} " + " ".join(f"{'n = ' + str(n):>9}" for n in (256, 512)))
    for name in acts.REGISTRY:
        times = []
        for n in (256, 512):
            kept = acts.kept_from_prob(probs, n) if acts.get(name).keeps_k else None
            cfg = model.AutoencoderConfig(n, model.hidden_width(n, RATIO), len(probs), activation=name, n_kept=kept)
            config = train.TrainConfig(n_steps=args.steps, batch=512)
            times.append(fastest(lambda: train.fit(cfg, probs, config, progress=False), args.repeats) / args.steps)
        print(f"{name:>10} " + " ".join(f"{1e3 * t:>9.1f}" for t in times))
    pre = torch.randn(4, 512, 512, generator=torch.Generator().manual_seed(0))
    n_kept = torch.tensor(acts.kept_from_prob([0.02, 0.05, 0.1, 0.2], 512))
    assert torch.equal(acts.topk_mask(pre, n_kept), sorted_topk_mask(pre, n_kept))
    grouped = fastest(lambda: acts.topk_mask(pre, n_kept), 10 * args.repeats)
    single = fastest(lambda: sorted_topk_mask(pre, n_kept), 10 * args.repeats)
    print(f"TopK mask, (4, 512, 512), K = {n_kept.tolist()}: per distinct K {1e3 * grouped:.1f} ms, "
          f"one sorted topk {1e3 * single:.1f} ms (the same mask)")


def dense_relu_step(x: torch.Tensor, enc: torch.Tensor, dec: torch.Tensor, b: torch.Tensor):
    """Loss (k,) and (∂E, ∂W_out, ∂b) of the ReLU model on a dense x (k, batch, n), every product a bmm:
    the formulas of ``model.loss_and_grads`` written for ``torch.compile`` (no data-dependent paths)."""
    scale = 2.0 / (x.shape[1] * x.shape[2])
    h = torch.bmm(x, enc)
    y = torch.relu(torch.baddbmm(b[:, None, :], h, dec.transpose(1, 2)))
    diff = y - x
    g = torch.where(y > 0, diff, 0.0) * scale
    return ((diff * diff).sum(dim=(1, 2)) * scale / 2, torch.bmm(x.transpose(1, 2), torch.bmm(g, dec)),
            torch.bmm(g.transpose(1, 2), h), g.sum(dim=1))


def compiled_step(args: argparse.Namespace) -> None:
    print(f"\n## compile: ms per loss-and-gradients call, ReLU, p = {P}, r = {RATIO}, batch {BATCH}, "
          f"k = {args.many} copies of a model trained 1,000 steps")
    print(f"{'n':>5} {'hand-written':>12} {'compiled':>9} {'hand/compiled':>13} {'compile s':>9} {'max rel diff':>12}")
    step = torch.compile(dense_relu_step, dynamic=False)
    for n in args.sizes:
        params = fit_run(n, 1, 1000)().params.select([0] * args.many)
        gens = data.make_generators(list(range(args.many)), params.b.device)
        batches = [data.sample_sparse(torch.full((args.many,), P, dtype=torch.float64), BATCH, n, gens)
                   for _ in range(4)]

        def fused(batch: data.SparseBatch):
            return step(batch.dense().transpose(0, 1).contiguous(), params.encoder, params.decoder, params.b)
        tic = time.perf_counter()
        fused(batches[0])
        compile_s = time.perf_counter() - tic
        loss, (g_enc, g_dec, g_b) = model.loss_and_grads(params, batches[0])
        diff = max(float((a - c).abs().max() / a.abs().max())
                   for a, c in zip((loss, g_enc, g_dec, g_b), fused(batches[0])))
        hand = fastest(lambda: [model.loss_and_grads(params, bt) for bt in batches], args.repeats) / len(batches)
        comp = fastest(lambda: [fused(bt) for bt in batches], args.repeats) / len(batches)
        print(f"{n:>5} {1e3 * hand:>12.2f} {1e3 * comp:>9.2f} {hand / comp:>13.2f} {compile_s:>9.1f} {diff:>12.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", default=["throughput", "profile"],
                        choices=["throughput", "profile", "blocks", "input", "transpose", "allocator", "target",
                                 "plateau", "activations", "compile"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--many", type=int, default=8, help="instances in the 'many' rows")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--target-sizes", type=int, nargs="+", default=[1024])
    parser.add_argument("--plateau-sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--cap", type=int, default=12_000)
    parser.add_argument("--min-steps", type=int, default=0, help="plateau: TrainConfig.min_steps (e.g. 3000)")
    parser.add_argument("--probe", type=int, nargs=3, metavar=("N", "K", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe:                      # one child process of the "allocator" section
        fault_probe(*args.probe)
        return
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {args.threads} threads, matmul peak {peak:.0f} GFLOP/s")
    sections = {"throughput": lambda: throughput(args, peak), "profile": lambda: profile(args),
                "blocks": lambda: blocks(args), "input": lambda: input_paths(args),
                "transpose": lambda: transpose_paths(args), "allocator": lambda: allocation(args),
                "target": lambda: target(args), "plateau": lambda: plateau(args),
                "activations": lambda: activation_steps(args), "compile": lambda: compiled_step(args)}
    for name in args.sections:
        sections[name]()


if __name__ == "__main__":
    main()
