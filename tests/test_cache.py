import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from toysup import paths, storage
from toysup.persian_rug import cache, calibrate, model, train

CFG = model.AutoencoderConfig(8, 2, 2)
TRAIN = train.TrainConfig(n_steps=5, batch=16)
# A child process fitting CFG, TRAIN, seed 3 into the cache folder argv[1] (the same fit as the tests).
CHILD = """import sys, time
import torch
from toysup.persian_rug import cache, model, train
{patch}
result = cache.cached_fit(model.AutoencoderConfig(8, 2, 2), [0.1, 0.2],
                          train.TrainConfig(n_steps=5, batch=16), seed=3, root=sys.argv[1], progress=False)
torch.save(result.params.W_eff(), sys.argv[2])
"""
# torch.save writes half of the entry, then the process is killed: a crash in the middle of the write.
KILLED_MID_WRITE = """import io, os, signal
def half_then_killed(obj, file):
    whole = io.BytesIO()
    real_save(obj, whole)
    file.write(whole.getvalue()[:len(whole.getvalue()) // 2])
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)
real_save, torch.save = torch.save, half_then_killed"""
# Training starts a second late, so two children started together both miss the key.
SLOW_START = """real_fit = cache.fit
def slow_fit(*args, **kwargs):
    time.sleep(1.0)
    return real_fit(*args, **kwargs)
cache.fit = slow_fit"""


@pytest.fixture(autouse=True)
def _measured_paths(monkeypatch):
    """The backward paths fixed (bmm everywhere): a first measurement of a shape prints a line of its
    own, which would come before the cache lines these tests read (test_calibrate covers it)."""
    monkeypatch.setattr(calibrate, "thresholds", lambda *args, **kwargs: calibrate.Thresholds(0.0, 0.0))


def _child(patch: str, root, result) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD.format(patch=patch), str(root), str(result)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _direct():
    return train.fit(CFG, [0.1, 0.2], TRAIN, seed=3, progress=False)


def test_miss_then_hit_returns_the_same_model(tmp_path, capsys):
    first = cache.cached_fit(CFG, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
    assert capsys.readouterr().out.startswith(f"cache: trained {paths.shown(tmp_path)}/fit-")
    second = cache.cached_fit(CFG, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
    out = capsys.readouterr().out
    assert out.startswith(f"cache: reused {paths.shown(tmp_path)}/fit-") and out.count("\n") == 1
    torch.testing.assert_close(second.params.W_eff(), first.params.W_eff())
    torch.testing.assert_close(second.params.b, first.params.b)
    torch.testing.assert_close(second.history, first.history)
    assert second.seeds == first.seeds
    assert len(list(tmp_path.glob("fit-*.pt"))) == 1


def test_cached_result_equals_a_direct_fit(tmp_path):
    cached = cache.cached_fit(CFG, 0.1, TRAIN, seed=1, root=tmp_path, progress=False)
    direct = train.fit(CFG, 0.1, TRAIN, seed=1, progress=False)
    torch.testing.assert_close(cached.params.W_eff(), direct.params.W_eff())


def test_a_jumprelu_model_keeps_its_thresholds(tmp_path):
    cfg = model.AutoencoderConfig(8, 2, 2, activation="jumprelu")
    trained = cache.cached_fit(cfg, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
    reused = cache.cached_fit(cfg, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
    assert set(reused.params.extra) == {"threshold"}
    torch.testing.assert_close(reused.params.extra["threshold"], trained.params.extra["threshold"].detach())
    x = torch.rand(4, 2, 8)
    torch.testing.assert_close(model.forward(reused.params, x), model.forward(trained.params, x).detach())


def test_any_change_of_configuration_is_a_new_entry(tmp_path):
    cache.cached_fit(CFG, 0.1, TRAIN, seed=0, root=tmp_path, progress=False)
    cache.cached_fit(CFG, 0.1, TRAIN, seed=1, root=tmp_path, progress=False)
    cache.cached_fit(CFG, 0.2, TRAIN, seed=0, root=tmp_path, progress=False)
    cache.cached_fit(CFG, 0.1, train.TrainConfig(n_steps=6, batch=16), seed=0, root=tmp_path,
                     progress=False)
    assert len(list(tmp_path.glob("fit-*.pt"))) == 4


def test_a_source_change_invalidates_the_entry(tmp_path, monkeypatch, capsys):
    cache.cached_fit(CFG, 0.1, TRAIN, seed=0, root=tmp_path, progress=False)
    monkeypatch.setattr(cache, "source_digest", lambda *args, **kwargs: "edited")
    cache.cached_fit(CFG, 0.1, TRAIN, seed=0, root=tmp_path, progress=False)
    assert capsys.readouterr().out.count("cache: trained") == 2
    assert len(list(tmp_path.glob("fit-*.pt"))) == 2


def test_the_key_follows_the_model_sources_and_versions_only(tmp_path, monkeypatch):
    copy = tmp_path / "toysup"
    shutil.copytree(paths.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))

    def key() -> str:
        return cache.cache_key(cache.fit_record(CFG, 0.1, TRAIN, seed=0, device="cpu", package_dir=copy))

    before = key()
    for unrelated in ("plotting.py", "book/scorecard.py", "cis/uand.py", "fits.py"):
        (copy / unrelated).write_text((copy / unrelated).read_text() + "\n# changed\n")
    assert key() == before
    for module in ("persian_rug/train.py", "checks.py"):
        text = (copy / module).read_text()
        (copy / module).write_text(text + "\n# changed\n")
        assert key() != before, module
        (copy / module).write_text(text)
    assert key() == before
    record = cache.fit_record(CFG, 0.1, TRAIN, seed=0, device="cpu")
    assert set(record["versions"]) == {"python", "numpy", "torch"}
    monkeypatch.setattr(cache, "versions", lambda packages: {"python": "3.99", "numpy": "9", "torch": "9"})
    assert key() != before


def test_a_truncated_entry_is_named_discarded_and_retrained(tmp_path, capsys):
    first = cache.cached_fit(CFG, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
    (entry,) = tmp_path.glob("fit-*.pt")
    for damaged in (entry.read_bytes()[:entry.stat().st_size // 2], b"not a torch file"):
        entry.write_bytes(damaged)
        capsys.readouterr()
        again = cache.cached_fit(CFG, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2 and lines[0].startswith(f"cache: {paths.shown(entry)} is unreadable (")
        assert lines[0].endswith("); discarded, retraining") and lines[1] == f"cache: trained {paths.shown(entry)}"
        torch.testing.assert_close(again.params.W_eff(), first.params.W_eff())
    cache.cached_fit(CFG, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
    assert capsys.readouterr().out == f"cache: reused {paths.shown(entry)}\n"


def test_a_write_killed_midway_publishes_nothing_and_the_rerun_trains_the_same_model(tmp_path):
    killed = _child(KILLED_MID_WRITE, tmp_path, tmp_path / "unused.pt")
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert not list(tmp_path.glob("fit-*.pt")) and len(list(tmp_path.glob(".fit-*.tmp"))) == 1
    rerun = cache.cached_fit(CFG, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
    torch.testing.assert_close(rerun.params.W_eff(), _direct().params.W_eff())
    assert len(list(tmp_path.glob("fit-*.pt"))) == 1 and not list(tmp_path.glob(".fit-*.tmp"))


def test_two_processes_missing_the_same_key_train_once_and_agree(tmp_path):
    children = [_child(SLOW_START, tmp_path / "cache", tmp_path / f"w{i}.pt") for i in range(2)]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    printed = "".join(outputs)
    assert printed.count("cache: trained") == 1 and printed.count("cache: reused") == 1
    direct = _direct().params.W_eff()
    for i in range(2):
        torch.testing.assert_close(torch.load(tmp_path / f"w{i}.pt", weights_only=True), direct)
    assert len(list((tmp_path / "cache").glob("fit-*.pt"))) == 1


def test_a_summary_prints_one_line_per_folder(tmp_path, capsys):
    cache.cached_fit(CFG, 0.1, TRAIN, seed=0, root=tmp_path, progress=False)
    capsys.readouterr()
    with cache.summarised():
        for seed in range(3):
            cache.cached_fit(CFG, 0.1, TRAIN, seed=seed, root=tmp_path, progress=False)
    assert capsys.readouterr().out == f"cache: 1 model reused, 2 trained ({paths.shown(tmp_path)})\n"
    cache.cached_fit(CFG, 0.1, TRAIN, seed=0, root=tmp_path, progress=False)
    assert capsys.readouterr().out.startswith("cache: reused")


def test_source_digest_follows_file_contents(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = cache.source_digest(tmp_path)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert cache.source_digest(tmp_path) != before
    assert len(before) == 64


def test_default_root_is_inside_the_repository_and_printed_relative_to_it():
    assert cache.DEFAULT_ROOT == cache.PACKAGE_DIR.parent / "outputs" / "cache"
    assert cache.DEFAULT_ROOT.is_absolute()
    assert paths.shown(cache.DEFAULT_ROOT / "fit-0.pt") == "outputs/cache/fit-0.pt"


def test_a_plateau_run_keeps_its_plateau_steps(tmp_path):
    cfg = model.AutoencoderConfig(16, 4, 2)
    config = train.TrainConfig(n_steps=300, batch=64, plateau=0.05, check_every=25)
    first = cache.cached_fit(cfg, [0.1, 0.3], config, seed=2, root=tmp_path, progress=False)
    again = cache.cached_fit(cfg, [0.1, 0.3], config, seed=2, root=tmp_path, progress=False)
    assert first.plateau_steps is not None
    assert torch.equal(again.plateau_steps, first.plateau_steps)
    assert torch.equal(again.steps, first.steps)


# cached_fits in a child process: four fits of different sizes, each slowed by 0.5 s, started once the
# other child has started too (argv[2] is the shared folder of start marks); prints which it trained.
SHARED = """import sys, time
from pathlib import Path
from toysup.persian_rug import cache, model, train
real_fit, trained = cache.fit, []
def slow_fit(cfg, *args, **kwargs):
    trained.append(cfg.n_features)
    time.sleep(0.5)
    return real_fit(cfg, *args, **kwargs)
cache.fit = slow_fit
marks = Path(sys.argv[2])
(marks / sys.argv[3]).touch()
while len(list(marks.iterdir())) < 2:
    time.sleep(0.01)
fits = [(model.AutoencoderConfig(n, 2, 2), [0.1, 0.2], train.TrainConfig(n_steps=5, batch=16))
        for n in (6, 8, 10, 12)]
results = cache.cached_fits(fits, seed=3, root=sys.argv[1], progress=False)
print(*trained, flush=True)
print(*[float(r.params.W_eff().sum()) for r in results])
"""


def test_two_processes_fitting_one_list_split_it_and_get_the_same_models(tmp_path):
    """Fails if both processes train every fit (the lists are not shared), if one waits instead of
    passing over a held fit, or if a reused fit differs from the one its trainer returned."""
    marks = tmp_path / "marks"
    marks.mkdir()
    children = [subprocess.Popen([sys.executable, "-c", SHARED, str(tmp_path / "cache"), str(marks),
                                  name], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"}) for name in "ab"]
    outputs = [child.communicate(timeout=120)[0].splitlines() for child in children]
    assert [child.returncode for child in children] == [0, 0]
    trained = [set(map(int, out[-2].split())) for out in outputs]   # after one cache line per fit
    assert trained[0].isdisjoint(trained[1]) and trained[0] | trained[1] == {6, 8, 10, 12}
    assert trained[0] and trained[1]                 # each trained some of the list
    assert outputs[0][-1] == outputs[1][-1]          # the same four models in both, in list order
    assert len(list((tmp_path / "cache").glob("fit-*.pt"))) == 4


def test_a_helper_fits_largest_first_and_leaves_what_another_holds(tmp_path, monkeypatch):
    """Fails if the fits are not taken largest first, or if a helper waits for (or trains) a fit
    whose entry another process holds."""
    fits = [(model.AutoencoderConfig(n, m, 2), [0.1, 0.2], TRAIN) for n, m in ((6, 2), (12, 3), (8, 4))]
    order = []
    real_fit = cache.fit
    monkeypatch.setattr(cache, "fit", lambda cfg, *a, **k: order.append(cfg.n_features) or real_fit(cfg, *a, **k))
    monkeypatch.setenv(storage.HELPER_ENV, "1")
    held = cache._entry(*fits[1], seed=0, device=torch.device("cpu"), root=tmp_path)[0]
    with storage.locked(held):                       # "another process" trains the 12-feature fit
        results = cache.cached_fits(fits, seed=0, root=tmp_path, progress=False)
    assert order == [8, 6] and results[1] is None    # costs 8·4 > 6·2; the held one left alone
    torch.testing.assert_close(results[0].params.W_eff(),
                               train.fit(*fits[0], seed=0, progress=False).params.W_eff())
    monkeypatch.delenv(storage.HELPER_ENV)
    again = cache.cached_fits(fits, seed=0, root=tmp_path, progress=False)
    assert order == [8, 6, 12] and all(r is not None for r in again)
    assert cache.fit_cost(*fits[2]) == 8 * 4 * 2 * TRAIN.n_steps * TRAIN.batch
