"""toysup.book.reproduce: parameters checked before anything runs, unchanged chapters reused, a change in
the notebook or its parameters rerun, a failed check named. The end-to-end tests use a one-cell
chapter in a temporary notebooks folder (each execution starts a kernel: a few seconds)."""
import json

import nbformat
import pytest

from toysup import paths, storage
from toysup.book import reproduce, scorecard

SCHEMA = '''from toysup.book import chapter
sizes = chapter.resolve(globals(), "01_tiny", threshold=chapter.Param("float", 2.0, low=0))'''
TINY = '''from toysup.book import scorecard
card = scorecard.Scorecard("01_tiny", sizes, seed=seed, device=device)
card.assert_at_most("T1", "one is at most the threshold", 1.0, threshold, kind="evidence")'''


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('fast = False\nscale = "book"\nseed = 0\ndevice = "cpu"\n'
                                       'threshold = None  # (a) b')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(SCHEMA), nbformat.v4.new_code_cell(TINY)]
    nbformat.write(nb, folder / "01_tiny.ipynb")
    monkeypatch.setattr(reproduce, "NOTEBOOKS", folder)
    return folder / "01_tiny.ipynb"


def test_every_chapter_takes_the_common_parameters():
    for notebook in reproduce.chapters():
        assert {"fast", "scale", "seed", "device"} <= set(reproduce.chapter_parameters(notebook)), notebook


def test_parameters_and_sections_are_checked(tiny, tmp_path):
    assert reproduce.chapter_params(tiny, {"all": {"seed": 2}, "01_tiny": {"threshold": 3.0}}) == \
        {"seed": 2, "threshold": 3.0}
    with pytest.raises(ValueError, match="01_tiny has no parameter.*n_featurs"):
        reproduce.chapter_params(tiny, {"all": {"n_featurs": 3}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("02_nonexistent: {seed: 1}\n")
    with pytest.raises(ValueError, match="unknown section.*02_nonexistent"):
        reproduce.load_spec(bad, fast=False)
    assert reproduce.load_spec(None, fast=True) == {"all": {"fast": True}}


def test_key_follows_notebook_parameters_versions_and_requirements(tiny, tmp_path, monkeypatch):
    key = reproduce.chapter_key(tiny, {"seed": 0})
    assert reproduce.chapter_key(tiny, {"seed": 0}) == key
    assert reproduce.chapter_key(tiny, {"seed": 1}) != key
    pinned = tmp_path / "requirements.txt"
    pinned.write_bytes(reproduce.REQUIREMENTS.read_bytes())
    with monkeypatch.context() as patch:
        patch.setattr(reproduce, "REQUIREMENTS", pinned)
        assert reproduce.chapter_key(tiny, {"seed": 0}) == key
        pinned.write_text(pinned.read_text().replace("scipy==", "scipy==0.0.0; # was "))
        assert reproduce.chapter_key(tiny, {"seed": 0}) != key
    with monkeypatch.context() as patch:
        patch.setattr(reproduce, "versions", lambda: {**paths.versions(), "scipy": "0.0.0"})
        assert reproduce.chapter_key(tiny, {"seed": 0}) != key
    assert reproduce.chapter_key(tiny, {"seed": 0}) == key
    assert set(paths.versions()) == {"python", "numpy", "scipy", "pandas", "matplotlib", "torch"}
    tiny.write_text(tiny.read_text().replace('2.0, low=0', '2.5, low=0'))
    assert reproduce.chapter_key(tiny, {"seed": 0}) != key


def test_unchanged_chapters_are_reused_and_failures_named(tiny, tmp_path, capfd):
    out = tmp_path / "build"
    assert reproduce.reproduce(out, {}, build=False) == 0
    assert "eavesdropping" not in capfd.readouterr().err       # the kernel's traffic is encrypted
    first = json.loads((out / "state.json").read_text())["01_tiny"]
    assert first["status"] == "pass"
    record = json.loads((out / "records" / "01_tiny.json").read_text())
    assert record["checks"][0]["status"] == "pass" and record["key"] == first["key"]
    executed = out / "notebooks" / "01_tiny.ipynb"
    assert reproduce.made_under(executed, "metadata", "toysup", "key") == first["key"]
    assert reproduce.reproduce(out, {}, build=False) == 0
    assert "unchanged since its run" in capfd.readouterr().out
    assert json.loads((out / "state.json").read_text())["01_tiny"] == first
    assert reproduce.reproduce(out, {"all": {"threshold": 0.5}}, build=False) == 1
    captured = capfd.readouterr()
    assert "FAILED: chapter 01_tiny" in captured.err and "T1 one is at most" in captured.err
    record = json.loads((out / "records" / "01_tiny.json").read_text())
    assert record["checks"][0]["status"] == "fail"      # the scorecard shows it red
    assert reproduce.reproduce(out, {"all": {"threshold": 0.5}}, build=False) == 1   # not reused


def test_a_chapter_made_under_another_key_is_rerun(tiny, tmp_path, capsys, monkeypatch):
    out = tmp_path / "build"
    assert reproduce.reproduce(out, {}, build=False) == 0
    key = json.loads((out / "state.json").read_text())["01_tiny"]["key"]
    monkeypatch.delenv("TOYSUP_KEY", raising=False)       # a run by hand into make book's records
    scorecard.Scorecard("01_tiny", {"mode": "book"}, seed=7, directory=out / "records")
    capsys.readouterr()
    assert reproduce.reproduce(out, {}, build=False) == 0
    assert "unchanged" not in capsys.readouterr().out
    record = json.loads((out / "records" / "01_tiny.json").read_text())
    assert record["seed"] == 0 and record["key"] == key
    executed = out / "notebooks" / "01_tiny.ipynb"      # an execution stamped under another key
    executed.write_text(executed.read_text().replace(key, "0" * 64))
    assert reproduce.reproduce(out, {}, build=False) == 0
    assert "unchanged" not in capsys.readouterr().out
    assert reproduce.made_under(executed, "metadata", "toysup", "key") == key


def test_an_interrupted_run_is_rerun_and_a_truncated_state_survived(tiny, tmp_path, capsys, monkeypatch):
    out = tmp_path / "build"
    assert reproduce.reproduce(out, {}, build=False) == 0
    executed = (out / "notebooks" / "01_tiny.ipynb").read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(reproduce.papermill, "execute_notebook", interrupted)
        reproduce.reproduce(out, {}, force=True, build=False)
    state = out / "state.json"
    assert "01_tiny" not in json.loads(state.read_text())      # so the next run cannot reuse it
    assert (out / "notebooks" / "01_tiny.ipynb").read_text() == executed   # the old one, complete
    state.write_text('{"01_tiny": {"key": "')
    assert reproduce.reproduce(out, {}, build=False) == 0
    printed = capsys.readouterr().out
    assert f"note: {paths.shown(state)} is unreadable" in printed and "unchanged" not in printed
    assert json.loads(state.read_text())["01_tiny"]["status"] == "pass"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_only_on_a_fresh_folder_runs_the_chapter_and_says_why_no_book(tiny, tmp_path, capsys):
    other = tiny.with_name("02_other.ipynb")
    other.write_bytes(tiny.read_bytes())
    out = tmp_path / "build"
    assert reproduce.reproduce(out, {}, only=["01_tiny"]) == 0
    assert "book not built: 02_other not yet executed" in capsys.readouterr().out
    assert (out / "notebooks" / "01_tiny.ipynb").exists() and not (out / "html").exists()


def test_a_string_boolean_from_papermill_is_read_in_the_kernel_not_truthy(tiny, tmp_path):
    # `papermill -p fast false` injects fast = "false" (a truthy string): the chapter's schema reads it
    out = tmp_path / "build"
    reproduce.execute_chapter(tiny, out / "notebooks", {"fast": "false", "threshold": "3"}, out / "records",
                              progress=False)
    record = json.loads((out / "records" / "01_tiny.json").read_text())
    assert record["mode"] == "book" and record["sizes"] == {"threshold": 3.0}
    with pytest.raises(reproduce.papermill.PapermillExecutionError, match="fast must be True or False"):
        reproduce.execute_chapter(tiny, out / "notebooks", {"fast": "no"}, out / "records", progress=False)


def test_jobs_run_chapters_side_by_side_longest_first_with_threads_shared(tiny, tmp_path, capsys, monkeypatch):
    second = tiny.with_name("02_tiny.ipynb")
    nb = nbformat.read(tiny, as_version=4)
    nb.cells = [nbformat.v4.new_code_cell(c.source.replace("01_tiny", "02_tiny"), metadata=c.metadata)
                for c in nb.cells]
    nb.cells.append(nbformat.v4.new_code_cell(   # the kernel's threads: cpu_count // jobs
        'import os\nassert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "2"'))
    nbformat.write(nb, second)
    monkeypatch.setattr(reproduce.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(reproduce, "HEARTBEAT", 0.5)     # a line while the chapters run, instead of bars
    with pytest.raises(ValueError, match=r"jobs must be an integer in \[1, 4\]"):
        reproduce.reproduce(tmp_path / "never", {}, jobs=5)
    out = tmp_path / "build"
    state = out / "state.json"
    out.mkdir()
    state.write_text(json.dumps({"02_tiny": {"seconds": 99.0}, "01_tiny": {"seconds": 1.0}}))
    assert reproduce.reproduce(out, {}, build=False, jobs=2) == 0
    printed = capsys.readouterr().out
    assert "2 at a time with 2 thread(s) each, the longest first: 02_tiny, 01_tiny" in printed
    assert " s: running " in printed
    entries = json.loads(state.read_text())
    assert {entries[c]["status"] for c in ("01_tiny", "02_tiny")} == {"pass"}
    assert reproduce.reproduce(out, {}, build=False, jobs=2) == 0     # both reused
    assert capsys.readouterr().out.count("unchanged since its run") == 2


def test_a_shared_training_cell_gets_a_helper_that_runs_the_chapter_up_to_it(tiny, tmp_path, capsys,
                                                                            monkeypatch):
    """Fails if the helper is not started beside its chapter, runs past its shared-training cell
    (it would write the chapter's record), runs without the helper flag, or leaves the flag in the
    worker process for the chapter that runs there next."""
    log = tmp_path / "trained.txt"
    nb = nbformat.read(tiny, as_version=4)
    train = nbformat.v4.new_code_cell(f'import os\nwith open({str(log)!r}, "a") as f:\n'
                                      f'    print(os.environ.get("{storage.HELPER_ENV}", "chapter"), file=f)')
    train.metadata["tags"] = [reproduce.SHARED_TRAINING]
    nb.cells.insert(2, train)
    nbformat.write(nb, tiny)
    other = tiny.with_name("02_tiny.ipynb")
    nb.cells = [nbformat.v4.new_code_cell(c.source.replace("01_tiny", "02_tiny"), metadata=c.metadata)
                for c in nb.cells if reproduce.SHARED_TRAINING not in c.metadata.get("tags", [])]
    nb.cells.append(nbformat.v4.new_code_cell(f'assert "{storage.HELPER_ENV}" not in os.environ'))
    nb.cells[2].source = "import os\n" + nb.cells[2].source
    nbformat.write(nb, other)
    monkeypatch.setattr(reproduce.os, "cpu_count", lambda: 2)
    out = tmp_path / "build"
    assert reproduce.reproduce(out, {}, build=False, jobs=2) == 0
    printed = capsys.readouterr().out
    assert "01_tiny first, each with a training helper; then the longest first: 02_tiny" in printed
    assert "01_tiny (training helper): pass in" in printed
    assert sorted(log.read_text().split()) == ["1", "chapter"]
    assert not (out / "helpers" / "records").exists()     # the scorecard cell is past the prefix
    assert [c.cell_type for c in nbformat.read(out / "helpers" / "01_tiny.ipynb", as_version=4).cells
            if "injected-parameters" not in c.metadata.get("tags", [])] == ["code"] * 3
