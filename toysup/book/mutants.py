"""The mutation run: deliberate one-line mistakes in ``toysup``, each applied to a temporary copy of the
repository, each followed by the chapter that owns the mistaken code in fast mode. A mutant is
*caught* when at least one evidence or regression check of that chapter fails; a failing consistency
check alone, or a crash, does not count (a crash names no claim). A mutant that survives is either a
missing check (add one) or carries the reason in ``Mutant.survives``; the run exits non-zero when
one survives without a reason.

    python -m toysup.book.mutants              # every mutant; the table goes to book/mutants_table.md
    python -m toysup.book.mutants --ci         # the CI subset (MUTANTS with ci=True), table in _build
    python -m toysup.book.mutants --only uand-bias

The copy is ``_build/mutants/<name>/`` (``toysup/``, ``notebooks/`` and the files the package reads),
so the mutant's model cache, records and executed notebook stay there. The chapter runs with
``$TOYSUP_RECORD_ONLY=1``: a failed check is recorded without stopping the chapter, so every check
runs and the table lists all that failed. Each mistake must match its file exactly once, else the
run stops with a ValueError naming the mutant (the code it targets has changed: update the table).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from toysup.paths import BUILD, REPO_ROOT

COPIED = ("toysup", "notebooks", "pyproject.toml", "requirements.txt")
TABLE = REPO_ROOT / "book" / "mutants_table.md"
CAUGHT_BY = ("evidence", "regression")


@dataclass(frozen=True)
class Mutant:
    name: str       # short id
    mistake: str    # what is wrong, in words
    path: str       # file relative to the repository
    old: str        # text that occurs exactly once in that file
    new: str        # what replaces it
    chapter: str    # owning chapter (notebook stem)
    ci: bool = False
    survives: str = ""   # why no evidence or regression check catches it, once a run has shown so


MUTANTS = [
    Mutant("eq5-no-kink", "Eq. 5 without the ReLU's kink terms (the Gaussian tail moments G1, G2)",
           "toysup/persian_rug/theory.py",
           "err * err + sigma * sigma - t2 - 2 * u * t1, t2 - 2 * u * t1 + u * u)",
           "err * err + sigma * sigma, u * u)", "03_analytic_loss", ci=True),
    Mutant("uand-bias", "U-AND bias -1 -> 0", "toysup/cis/uand.py",
           "act = activation(preactivation_basis(B, active), -1.0)",
           "act = activation(preactivation_basis(B, active), 0.0)", "10_uand_basis", ci=True),
    Mutant("kand-threshold", "k-input AND closed form with threshold k instead of k - 1",
           "toysup/cis/boolean.py",
           "z = z.reshape((-1,) + (1,) * len(shape)) - (size - 1) + np.asarray(noise_mean, float)",
           "z = z.reshape((-1,) + (1,) * len(shape)) - size + np.asarray(noise_mean, float)",
           "12_boolean_circuits", ci=True),
    Mutant("rug-wout-1", "the rug's W_out scaled by 1 instead of a/m", "toysup/persian_rug/rug.py",
           "return W_in, (a / W_in.shape[0]) * W_in.T", "return W_in, W_in.T", "05_persian_rug",
           survives="only R8's exact algebra (consistency) sees it: the rug's loss (R9a) goes through "
           "rug.rug_apply with the read-off scale a fitted, which absorbs any overall factor in W_out; no "
           "claim of the chapter depends on it"),
    Mutant("sigma-second-moment", "interference variance σ_i² with E x_j² = p/3 instead of Var x_j = v(p)",
           "toysup/persian_rug/stats.py", "return feature_variance(p)[:, None] * (off_diagonal(W) ** 2).sum(dim=2)",
           "return (p / 3)[:, None] * (off_diagonal(W) ** 2).sum(dim=2)", "02_symmetry",
           survives="a missing chapter check: at the reference points' p = 0.045 and 0.1 the mistake raises σ_i² by 3.5-8 % "
           "(σ by 2-4 %), and in fast mode what sees σ's scale there is loose (Eq. 5 / true loss in [1, 1.5), "
           "transformed loss / Eq. 5 within 10 %); the grid's R4 and R5 are scale-free. tests/test_stats.py (exact "
           "values) catches it"),
    Mutant("v-p-over-3", "feature variance v(p) = p/3 (the mean p/2 forgotten)",
           "toysup/persian_rug/theory.py", "return p / 3 - p * p / 4", "return p / 3", "01_toy_model"),
    Mutant("sigma-no-s", "interference variance pm/d0 (the s dropped)", "toysup/cis/uand.py",
           "return math.sqrt(connect_prob * n_features * n_active / d_input)",
           "return math.sqrt(connect_prob * n_features / d_input)", "11_uand_superposition", ci=True),
    Mutant("ec-threshold", "error-correction AND threshold moved from 1 + δ to 0.5 + δ",
           "toysup/cis/deep_circuits.py",
           "return self.margin, 1 - self.margin, 1 + self.margin, 2 - self.margin",
           "return self.margin, 1 - self.margin, 0.5 + self.margin, 2 - self.margin", "13_deep_circuits"),
    Mutant("connect-prob", "connection probability p = K/d instead of (K/d)^(1/k)", "toysup/cis/uand.py",
           "return float((n_shared / d_hidden) ** (1.0 / k))", "return float(n_shared / d_hidden)", "14_trained_vs_constructed"),
    Mutant("jumprelu-inactive", "JumpReLU loss without the inactive features' term",
           "toysup/persian_rug/mmse.py", "return float((1 - p) * inactive + p * simpson(active, x=u))",
           "return float(p * simpson(active, x=u))", "04_activations"),
    Mutant("readout-all", "read-off averaged over all d neurons instead of the pair's |N_ij|",
           "toysup/cis/uand.py", "values[start:start + rows] = tot / cnt.clamp(min=1)",
           "values[start:start + rows] = tot / d", "10_uand_basis"),
    Mutant("linear-authors", "linear baseline with the authors' formula (p/3)(1 - r)",
           "toysup/persian_rug/theory.py", "return _out(feature_variance(p) * (1 - r))",
           "return _out(p / 3 * (1 - r))", "01_toy_model"),
    Mutant("values-u02", "feature values U[0, 2] instead of U[0, 1]", "toysup/persian_rug/data.py",
           "values.append(draws[budget:budget + kept])",
           "values.append(2 * draws[budget:budget + kept])",
           "01_toy_model"),
    Mutant("adam-beta2", "Adam's second-moment β = 0.9 instead of 0.999", "toysup/persian_rug/train.py",
           "betas: tuple[float, float] = (0.9, 0.999)", "betas: tuple[float, float] = (0.9, 0.9)",
           "01_toy_model",
           survives="β2 = 0.9 is a working optimiser setting too: every check of the chapter still passes "
           "with it, because they compare trained models with theory, not with the spec's optimiser "
           "constants; a missing check would have to be a regression on the spec's reference "
           "losses of its training protocol, which the chapter does not quote"),
]


def _mutated(path: Path, mutant: Mutant) -> str:
    text = path.read_text()
    if text.count(mutant.old) != 1:
        raise ValueError(f"mutant {mutant.name}: {mutant.old!r} occurs {text.count(mutant.old)} times in "
                         f"{mutant.path}, expected once; update toysup/book/mutants.py")
    return text.replace(mutant.old, mutant.new)


def prepare(mutant: Mutant, root: Path) -> Path:
    """A fresh copy of the repository's package and chapters in ``root`` with the mistake applied."""
    mutated = _mutated(REPO_ROOT / mutant.path, mutant)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name in COPIED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    (root / mutant.path).write_text(mutated)
    (root / "_build").mkdir()
    return root


def run(mutant: Mutant, root: Path, *, timeout: float = 900) -> dict:
    """Apply ``mutant`` in ``root``, execute its chapter in fast mode there, and report the failed
    checks: {"mutant", "mistake", "chapter", "caught_by" (failed evidence/regression checks),
    "consistency" (failed consistency checks), "error" (last line of a crash or timeout), "seconds"}."""
    prepare(mutant, root)
    records = root / "_build" / "records"
    notebook = root / "notebooks" / f"{mutant.chapter}.ipynb"
    env = {**os.environ, "PYTHONPATH": str(root), "TOYSUP_RECORDS": str(records),
           "TOYSUP_RECORD_ONLY": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("TOYSUP_KEY", None)
    start = time.monotonic()
    error = ""
    try:
        done = subprocess.run([sys.executable, "-m", "papermill", str(notebook),
                               str(root / "_build" / notebook.name), "-p", "fast", "True", "-k", "python3",
                               "--cwd", str(notebook.parent), "--no-progress-bar"],
                              env=env, capture_output=True, text=True, timeout=timeout, cwd=root)
        if done.returncode:
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            error = lines[-1][:200] if lines else f"exit {done.returncode}"
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout:.0f} s"
    try:
        checks = json.loads((records / f"{mutant.chapter}.json").read_text())["checks"]
    except (OSError, ValueError, KeyError):
        checks = []
    failed = [c for c in checks if c["status"] == "fail"]
    return {"mutant": mutant.name, "mistake": mutant.mistake, "chapter": mutant.chapter,
            "caught_by": [f"{c['claim']} [{c['kind']}] {c['statement']}" for c in failed
                          if c["kind"] in CAUGHT_BY],
            "consistency": [f"{c['claim']} {c['statement']}" for c in failed if c["kind"] not in CAUGHT_BY],
            "error": error, "seconds": round(time.monotonic() - start, 1)}


def table(results: list[dict], *, title: str, when: str | None = None) -> str:
    """The results as a MyST page fragment: one row per mutant; a survivor shows its reason
    (``Mutant.survives``). when: the run's time, 'YYYY-MM-DD HH:MM' UTC (default now)."""
    reasons = {m.name: m.survives for m in MUTANTS}
    caught = sum(bool(r["caught_by"]) for r in results)
    total = sum(r["seconds"] for r in results)
    lines = [f"{title}: **{caught} of {len(results)} mutants caught** by an evidence or regression check "
             f"of their chapter in fast mode; {total:.0f} s in all, run "
             f"{when or datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC.", "",
             "| mutant | mistake | chapter | caught by (first failed evidence/regression check) | "
             "also failed | s |", "|---|---|---|---|---|---|"]
    for r in results:
        reason = reasons.get(r["mutant"])
        first = r["caught_by"][0] if r["caught_by"] else "**SURVIVED**" + (f": {reason}" if reason else "")
        more = len(r["caught_by"]) - 1
        also = "; ".join(filter(None, [f"{more} more evidence/regression" if more > 0 else "",
                                       f"{len(r['consistency'])} consistency" if r["consistency"] else "",
                                       r["error"] and f"crash: {r['error']}"]))
        cells = [r["mutant"], r["mistake"], r["chapter"], first, also or "—", f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ci", action="store_true", help="only the CI subset; table in _build/mutants")
    parser.add_argument("--only", nargs="+", help="mutant names")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if (not args.ci or m.ci) and (not args.only or m.name in args.only)]
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        raise ValueError(f"--only: unknown mutants {sorted(unknown)}; known {[m.name for m in MUTANTS]}")
    out = BUILD / "mutants" / ("ci_table.md" if args.ci or args.only else "table.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for mutant in chosen:   # the table is rewritten after every mutant: an interrupted run keeps its rows
        results.append(run(mutant, BUILD / "mutants" / mutant.name))
        r = results[-1]
        print(f"{mutant.name:18s} {mutant.chapter:26s} {r['seconds']:6.0f} s  "
              f"{r['caught_by'][0] if r['caught_by'] else 'SURVIVED ' + r['error']}", flush=True)
        out.write_text(table(results, title="CI subset" if args.ci else "Mutation run"))
        out.with_suffix(".json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    if not (args.ci or args.only):
        TABLE.write_text(out.read_text())
    print(f"table: {out.relative_to(REPO_ROOT)}")
    unexplained = [r["mutant"] for r, m in zip(results, chosen) if not r["caught_by"] and not m.survives]
    if unexplained:
        print(f"SURVIVED without a reason: {unexplained} (add a check, or give the reason in MUTANTS)")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
