"""What a reader rerunning chapters with their own parameters meets (issue 17): bad inputs refused up
front with a ValueError naming the parameter, nothing written outside the repository's _build/ and
outputs/, and a chapter killed mid-run rerun to the same scorecard as an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from toysup import checks, paths
from toysup.book import reproduce
from toysup.persian_rug import data, model, rug, train

NB = {nb.stem: nb for nb in reproduce.chapters()}


def chapter_value(stem: str, **params):
    """The check ``reproduce`` runs on a parameter file's values for one chapter."""
    return lambda: reproduce.chapter_params(NB[stem], {stem: params})


def missing_params_file():
    return reproduce.load_spec(Path("no/such/params.yaml"), fast=False)


# (probe, the name the message must contain). Each probe is an input a reader could plausibly type.
def tiny_fit(**kwargs):
    return train.fit(model.AutoencoderConfig(n_features=8, d_hidden=2), 0.1, train.TrainConfig(n_steps=2, batch=4),
                     progress=False, **kwargs)


PROBES = {
    "seed -1": (chapter_value("01_toy_model", seed=-1), r"^01_toy_model: seed must be an integer in \[0, 4294967295\], got -1$"),
    "seed 2**32": (chapter_value("10_uand_basis", seed=2**32), r"seed must be .* got 4294967296"),
    "seed 'abc'": (chapter_value("13_deep_circuits", seed="abc"), "seed must be .* got 'abc'"),
    "seed 1.5": (chapter_value("14_trained_vs_constructed", seed=1.5), "seed must be .* got 1.5"),
    "device tpu": (chapter_value("01_toy_model", device="tpu"), "device must be 'cpu' or 'cuda"),
    "device cuda, cpu-only chapter": (chapter_value("03_analytic_loss", device="cuda"), "device must be 'cpu', got 'cuda'"),
    "device 7": (chapter_value("04_activations", device=7), "device must be .* got 7"),
    "scale huge": (chapter_value("02_symmetry", scale="huge"), "scale must be 'book' or 'paper', got 'huge'"),
    "fast 'no'": (chapter_value("05_persian_rug", fast="no"), "fast must be True or False .* got 'no'"),
    "fast 1": (chapter_value("10_uand_basis", fast=1), "fast must be True or False .* got 1"),
    "n_features -5": (chapter_value("01_toy_model", n_features=-5), r"n_features must be an integer in \[2, inf\), got -5"),
    "n_features '2.5e3x'": (chapter_value("01_toy_model", n_features="2.5e3x"), "n_features must be .* got '2.5e3x'"),
    "max_steps 1.5": (chapter_value("01_toy_model", max_steps=1.5), "max_steps must be an integer .* got 1.5"),
    "sweep_probs [1.5]": (chapter_value("01_toy_model", sweep_probs=[1.5]), r"sweep_probs must be .* \(0, 1\], got \[1.5\]"),
    "sweep_probs []": (chapter_value("01_toy_model", sweep_probs=[]), r"sweep_probs must be a non-empty list"),
    "sweep_ratios [0]": (chapter_value("01_toy_model", sweep_ratios=[0]), r"sweep_ratios must be .* got \[0\]"),
    "grid_sizes 64 (not a list)": (chapter_value("02_symmetry", grid_sizes=64), "grid_sizes must be a non-empty list"),
    "grid_probs '0.1' (not a list)": (chapter_value("02_symmetry", grid_probs="0.1"), "grid_probs must be a non-empty list"),
    "n_eval 'lots'": (chapter_value("02_symmetry", n_eval="lots"), "n_eval must be an integer"),
    "rank_sizes [100]": (chapter_value("03_analytic_loss", rank_sizes=[100]), r"rank_sizes must be .* powers of two"),
    "n_grid 1": (chapter_value("03_analytic_loss", n_grid=1), r"n_grid must be an integer in \[2, inf\)"),
    "train_probs [nan]": (chapter_value("04_activations", train_probs=[float("nan")]), "train_probs must be"),
    "ns [100]": (chapter_value("05_persian_rug", ns=[100]), r"ns must be a non-empty list of powers of two"),
    "n_entries inf": (chapter_value("05_persian_rug", n_entries=float("inf")), "n_entries must be an integer"),
    "exclude_constant 'maybe'": (chapter_value("05_persian_rug", exclude_constant="maybe"), "exclude_constant must be True or False"),
    "curve_ps [0.1, -0.2]": (chapter_value("05_persian_rug", curve_ps=[0.1, -0.2]), r"curve_ps must be .* \(0, 1\]"),
    "seed_network -3": (chapter_value("10_uand_basis", seed_network=-3), r"seed_network must be an integer in \[0, 4294967295\], or None"),
    "n_active 1": (chapter_value("11_uand_superposition", n_active=1), r"n_active must be an integer in \[2, inf\)"),
    "ks [1, 2]": (chapter_value("12_boolean_circuits", ks=[1, 2]), r"ks must be .* \[2, inf\)"),
    "net_seeds [-1]": (chapter_value("13_deep_circuits", net_seeds=[-1]), "net_seeds must be a non-empty list of integers in"),
    "n_test 0": (chapter_value("14_trained_vs_constructed", n_test=0), r"n_test must be an integer in \[1, inf\)"),
    "unknown name n_featurs": (chapter_value("01_toy_model", n_featurs=3), r"01_toy_model has no parameter\(s\) \['n_featurs'\]"),
    "missing --params file": (missing_params_file, "--params: cannot read the parameter file no/such/params.yaml"),
    "--only unknown chapter": (lambda: reproduce.reproduce(paths.BUILD / "never", {}, only=["99_nope"]),
                               r"--only names unknown chapter\(s\) \['99_nope'\]"),
    "rug_matrix rows [0.0, 1.5]": (lambda: rug.rug_matrix(64, rows=[0.0, 1.5]), "rows must be integer indices"),
    "rug_matrix rows [0, 64]": (lambda: rug.rug_matrix(64, rows=torch.tensor([0, 64])), r"rows must be .* \[0, 63\]"),
    "samples_for p 1.5": (lambda: rug.samples_for(64, 1.5, 2**21), r"feature_prob must lie in \(0, 1\], got 1.5"),
    "samples_for n 0": (lambda: rug.samples_for(0, 0.1, 2**21), "n_features must be"),
    "make_generators seed -1": (lambda: data.make_generators([-1], torch.device("cpu")), r"seeds must be integers in \[0, 2\*\*64 - 1\]"),
    "checks.seed numpy bool": (lambda: checks.seed("seed", np.bool_(True)), "seed must be an integer"),
    "checks.finite_float inf": (lambda: checks.finite_float("lr0", float("inf"), low=0, open_low=True), r"lr0 must be a finite number in \(0, inf\)"),
    "TrainConfig betas (1.5, 0.9)": (lambda: train.TrainConfig(betas=(1.5, 0.9)), "betas must"),
    "TrainConfig eps -1": (lambda: train.TrainConfig(eps=-1), "eps must"),
    "TrainConfig lr0 inf": (lambda: train.TrainConfig(lr0=float("inf")), "lr0 must"),
    "fit seed -1": (lambda: tiny_fit(seed=-1), "seed must"),
    "fit seed [2**64]": (lambda: tiny_fit(seed=[2**64]), "seed must"),
    "AutoencoderConfig relu n_kept 99": (lambda: model.AutoencoderConfig(8, 2, activation="relu", n_kept=99),
                                         "n_kept must"),
    "TrainConfig plateau 1.0": (lambda: train.TrainConfig(plateau=1.0), "plateau must"),
    "TrainConfig check_every 0": (lambda: train.TrainConfig(check_every=0), "check_every must"),
}


@pytest.mark.parametrize("probe", PROBES)
def test_a_bad_input_is_refused_naming_the_parameter(probe):
    call, message = PROBES[probe]
    with pytest.raises(ValueError, match=message):
        call()


def test_the_issue_probe_is_refused_before_anything_runs(tmp_path):
    out = tmp_path / "build"
    bad = {"seed": -1, "device": "tpu", "scale": "huge", "fast": "no"}
    with pytest.raises(ValueError, match="nothing was run") as refused:
        reproduce.reproduce(out, {"all": bad, "01_toy_model": {"n_features": -5}}, build=False)
    first = str(refused.value).splitlines()[1]
    for name, value in [*bad.items(), ("n_features", -5)]:
        assert f"{name} must be" in first and f"got {value!r}" in first, (name, first)
    assert "02_symmetry has no parameter" not in str(refused.value)
    assert not out.exists()


def test_the_parameter_file_values_reach_the_chapter_as_their_type(tmp_path):
    spec = tmp_path / "params.yaml"
    spec.write_text('all: {fast: "false", seed: 3}\n05_persian_rug: {n_entries: 2e6, exclude_constant: "True"}\n')
    params = reproduce.chapter_params(NB["05_persian_rug"], reproduce.load_spec(spec, fast=False))
    assert params == {"fast": False, "seed": 3, "n_entries": 2_000_000, "exclude_constant": True}


def files_outside_outputs(root: Path) -> dict[str, int]:
    """{path: mtime} of every file of the repository outside _build/, outputs/, .venv/, .git and
    Python's own bytecode caches."""
    skip = {"_build", "outputs", ".venv", ".git", "__pycache__"}
    found = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [s for s in subfolders if s not in skip]
        for name in files:
            path = Path(folder, name)
            found[path.relative_to(root).as_posix()] = path.stat().st_mtime_ns
    return found


def test_a_chapter_writes_only_under_build_and_outputs(tmp_path, monkeypatch):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    for name in ("MPLCONFIGDIR", "IPYTHONDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                 "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    before = files_outside_outputs(paths.REPO_ROOT)
    out = paths.BUILD / "sandbox"
    reproduce.execute_chapter(NB["10_uand_basis"], out / "notebooks", {"fast": True}, out / "records",
                              progress=False)
    assert json.loads((out / "records" / "10_uand_basis.json").read_text())["checks"]
    assert files_outside_outputs(paths.REPO_ROOT) == before
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["home", "tmp"]


KILLABLE = '''import time
from pathlib import Path
Path("started").touch()
while Path("hold").exists():        # the test kills the run here
    time.sleep(0.05)
from toysup.book import scorecard
card = scorecard.Scorecard("01_slow", sizes, seed=seed, device=device)
card.assert_at_most("T1", "one is at most the threshold", 1.0, threshold, kind="consistency")'''
RUN = '''import sys
from pathlib import Path
from toysup.book import reproduce
reproduce.NOTEBOOKS = Path(sys.argv[1])
sys.exit(reproduce.reproduce(Path(sys.argv[2]), {}, force="--force" in sys.argv, build=False))'''


def slow_chapter(folder: Path) -> None:
    """A one-check chapter "01_slow" in ``folder`` that blocks mid-run while ``folder/hold`` exists."""
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('fast = False\nscale = "book"\nseed = 0\ndevice = "cpu"\n'
                                       'threshold = None  # the bound of T1')
    params.metadata["tags"] = ["parameters"]
    schema = ('from toysup.book import chapter\n'
              'sizes = chapter.resolve(globals(), "01_slow", threshold=chapter.Param("float", 2.0))')
    nb.cells = [params, nbformat.v4.new_code_cell(schema), nbformat.v4.new_code_cell(KILLABLE)]
    nbformat.write(nb, folder / "01_slow.ipynb")


def started(run: subprocess.Popen, marker: Path) -> None:
    """Wait until ``marker`` appears (the chapter is running), at most two minutes."""
    deadline = time.monotonic() + 120
    while not marker.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the chapter never started"


def test_a_chapter_killed_mid_run_is_rerun_to_the_same_scorecard(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    slow_chapter(folder)
    monkeypatch.setattr(reproduce, "NOTEBOOKS", folder)
    out = tmp_path / "build"
    assert reproduce.reproduce(out, {}, build=False) == 0          # the uninterrupted run
    reference = json.loads((out / "records" / "01_slow.json").read_text())

    (folder / "started").unlink()
    (folder / "hold").touch()
    run = subprocess.Popen([sys.executable, "-c", RUN, str(folder), str(out), "--force"], start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started(run, folder / "started")
    os.killpg(run.pid, signal.SIGKILL)        # a --force rerun and its kernel, mid-chapter
    assert run.wait() == -signal.SIGKILL
    (folder / "hold").unlink()
    assert "01_slow" not in reproduce.load_state(out / "state.json")   # so it cannot be reused

    assert reproduce.reproduce(out, {}, build=False) == 0
    state = reproduce.load_state(out / "state.json")["01_slow"]
    assert state["status"] == "pass" and not state["reused"]
    rerun = json.loads((out / "records" / "01_slow.json").read_text())
    assert rerun["checks"] == reference["checks"] and rerun["key"] == reference["key"] == state["key"]
    assert reproduce.made_under(out / "notebooks" / "01_slow.ipynb", "metadata", "toysup", "key") == state["key"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_the_readme_shows_the_parameter_tables_of_the_schemas():
    readme = (paths.REPO_ROOT / "README.md").read_text()
    shown = readme.split("<!-- parameter tables: begin -->\n")[1].split("\n<!-- parameter tables: end -->")[0]
    assert shown == reproduce.parameter_tables(), \
        "README's parameter tables are stale: regenerate with python -m toysup.book.reproduce --parameter-tables"


def test_two_runs_on_one_build_folder_take_turns_and_both_finish(tmp_path):
    folder, out = tmp_path / "notebooks", tmp_path / "build"
    slow_chapter(folder)
    (folder / "hold").touch()
    first = subprocess.Popen([sys.executable, "-c", RUN, str(folder), str(out)], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started(first, folder / "started")                 # the first run holds the folder, mid-chapter
    second = subprocess.Popen([sys.executable, "-c", RUN, str(folder), str(out)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert "waiting for the other run" in second.stdout.readline()
    (folder / "hold").unlink()
    first_log, _ = first.communicate(timeout=120)
    second_log, _ = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (first_log, second_log)
    assert "unchanged since its run" in second_log      # it waited, then reused the finished chapter
    record = json.loads((out / "records" / "01_slow.json").read_text())
    assert [c["status"] for c in record["checks"]] == ["pass"]
    assert reproduce.load_state(out / "state.json")["01_slow"]["status"] == "pass"
