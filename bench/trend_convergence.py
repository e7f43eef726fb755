"""Chapter 2's reference points trained to the convergence criterion, against the fixed cosine schedule
the chapter trains them on: does the size trend (trained/L* rising toward 1, antipodal pairs
disappearing, Gaussian interference) survive longer training?

For each n and p of the reference points ((p, r) = (0.045, 0.25) and (0.1, 0.25), chapter 2's
``trend_probs``, the same seed) it trains two models, one tensor per n with every p an instance:
  * cosine   — ``TrainConfig(n_steps=--cosine-steps)``, chapter 2's book-scale schedule (3,000 steps);
  * criterion— ``TrainConfig(n_steps=--cap, plateau=train.CONVERGED, min_steps=--min-steps)``: constant
               lr₀ until the smoothed loss improves by less than 0.5 % over the last quarter of the
               steps (or the cap), then the anneal; chapter 2's grid protocol with a larger cap.
and prints one row per model: the steps it trained, the step it met the criterion (−1: the cap), the
criterion at its end, and chapter 2's statistics (``symmetry.measure`` on --n-eval held-out samples,
L* from ``theory``). The models go to the book's model cache (outputs/cache), so the cosine models
of a ``make book`` at book scale are reused and a rerun trains nothing.

Long: measured 29 min on two cores (both processes of a run share the list through the cache; start
the same command twice) for n = 512, 1024, 2048 with the cap 12,000.

Run:  .venv/bin/python bench/trend_convergence.py [--sizes 512 1024 2048] [--cap 12000]
"""
import argparse

import pandas as pd
import torch

from toysup.persian_rug import symmetry, train

PROBS = [0.045, 0.1]   # chapter 2's trend_probs at r = 1/4
RATIO = 0.25
COLUMNS = ["schedule", "n", "p", "steps", "plateau_step", "plateau_gain", "loss_over_Lstar", "paired",
           "ks_reject_fraction", "lyapunov", "delta_diag", "delta_eff_bias", "sigma2_rel_spread",
           "eq5_over_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--cap", type=int, default=12_000, help="constant-lr steps at most (criterion)")
    parser.add_argument("--min-steps", type=int, default=1000, help="TrainConfig.min_steps (criterion)")
    parser.add_argument("--cosine-steps", type=int, default=3000, help="chapter 2's fixed schedule")
    parser.add_argument("--n-eval", type=int, default=40_960, help="held-out samples per loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    criterion = train.TrainConfig(n_steps=args.cap, plateau=train.CONVERGED, min_steps=args.min_steps)
    sets = {"cosine": (args.sizes, PROBS, [RATIO], args.cosine_steps),
            "criterion": (args.sizes, PROBS, [RATIO], criterion)}
    runs = symmetry.train_sets(sets, seed=args.seed)
    table = pd.concat([symmetry.add_optimum(symmetry.measure(runs[name], PROBS, seed=args.seed,
                                                             n_eval=args.n_eval)).assign(schedule=name)
                       for name in sets], ignore_index=True)
    print(f"\n## reference points (p, {RATIO}): {args.cosine_steps} cosine steps against the criterion "
          f"(cap {args.cap}, min_steps {args.min_steps}); plateau_step −1: the cap was reached")
    print(table[COLUMNS].sort_values(["p", "n", "schedule"]).to_string(index=False, float_format="%.4g"))


if __name__ == "__main__":
    main()
