"""Training throughput of the batched trainer (toysup.train.fit) against loops over models.

For n in {256, 512, 1024, 2048}, r = 1/4, p = 0.045, batch 1024, one and many instances, prints
ms per model-step for
  * batched   — toysup.train.fit with all k instances in one tensor;
  * loop      — toysup.train.fit called once per model (k = 1), the same steps;
  * reference — a per-model loop of the usual PyTorch implementation (two nn.Linear-style matrices,
                dense matmuls, two uniform draws per entry, autograd, torch.optim.Adam), as peer
                codebases train these models;
and the achieved GFLOP/s of the unavoidable dense work, 6·B·n·m flops per model-step (the decoder's
forward product and its two gradient products), against a matmul peak measured in the same run.
The target: at n ≥ 1024 a step takes at most twice the time of 6·B·n·m at that peak; for n ≤ 256 with
many instances, batching is at least 3× faster than the per-model loop.

Run:  .venv/bin/python bench/train_throughput.py [--steps 20] [--threads 2] [--many 8]
Per-step times are the fastest of three timed runs after a warm-up run.
"""
import argparse
import math
import time

import torch

from toysup.persian_rug import model, train

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


def per_step(run, steps: int, repeats: int = 3) -> float:
    """Seconds per step of ``run(n_steps)``: the fastest of ``repeats`` timed runs of ``steps`` steps
    after a warm-up run (set-up, the parameters' initialisation, is under 1 % of a run)."""
    run(2)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(steps)
        times.append(time.perf_counter() - t0)
    return min(times) / steps


def batched(n: int, k: int):
    cfg = model.AutoencoderConfig(n, model.hidden_width(n, RATIO), k)
    return lambda steps: train.fit(cfg, P, train.TrainConfig(n_steps=steps, batch=BATCH), seed=0,
                                   progress=False)


def loop(n: int, k: int):
    cfg = model.AutoencoderConfig(n, model.hidden_width(n, RATIO), 1)

    def run(steps: int) -> None:
        for i in range(k):
            train.fit(cfg, P, train.TrainConfig(n_steps=steps, batch=BATCH), seed=i, progress=False)
    return run


def reference(n: int, k: int):
    m = model.hidden_width(n, RATIO)

    def run(steps: int) -> None:
        for i in range(k):
            gen = torch.Generator().manual_seed(i)
            w_in = ((torch.rand(m, n, generator=gen) * 2 - 1) / n ** 0.5).requires_grad_()
            w_out = ((torch.rand(n, m, generator=gen) * 2 - 1) / m ** 0.5).requires_grad_()
            b = ((torch.rand(n, generator=gen) * 2 - 1) / m ** 0.5).requires_grad_()
            opt = torch.optim.Adam([w_in, w_out, b], lr=1e-3, eps=1e-7)
            for _ in range(steps):
                u = torch.rand(BATCH, n, generator=gen)
                x = torch.where(torch.rand(BATCH, n, generator=gen) < P, u, 0.0)
                y = torch.relu(x @ w_in.T @ w_out.T + b)
                loss = ((y - x) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--many", type=int, default=8, help="instances in the 'many' rows")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {args.threads} threads, matmul peak {peak:.0f} GFLOP/s; "
          f"p = {P}, r = {RATIO}, batch {BATCH}; times are ms per model-step")
    header = (f"{'n':>5} {'k':>3} {'batched':>9} {'loop':>9} {'reference':>10} {'GFLOP/s':>8} "
              f"{'step/6Bnm@peak':>15} {'loop/batched':>13} {'reference/batched':>18}")
    print(header)
    for n in args.sizes:
        for k in (1, args.many):
            t_batched = per_step(batched(n, k), args.steps) / k
            t_loop = t_batched if k == 1 else per_step(loop(n, k), args.steps) / k
            t_ref = per_step(reference(n, 1), args.steps)
            dense = 6 * BATCH * n * model.hidden_width(n, RATIO)
            print(f"{n:>5} {k:>3} {1e3 * t_batched:>9.2f} {1e3 * t_loop:>9.2f} {1e3 * t_ref:>10.2f} "
                  f"{dense / t_batched / 1e9:>8.1f} {t_batched / (dense / (peak * 1e9)):>15.2f} "
                  f"{t_loop / t_batched:>13.2f} {t_ref / t_batched:>18.2f}")


if __name__ == "__main__":
    main()
