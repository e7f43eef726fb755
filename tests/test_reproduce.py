"""toysup.reproduce: parameters checked before anything runs, unchanged chapters reused, a change in
the notebook or its parameters rerun, a failed check named. The end-to-end tests use a one-cell
chapter in a temporary notebooks folder (each execution starts a kernel: a few seconds)."""
import json

import nbformat
import pytest

from toysup import reproduce

TINY = '''from toysup import chapter, scorecard
sizes = chapter.resolve({"fast": {}, "book": {}}, fast=fast, scale="book", overrides={})
card = scorecard.Scorecard("01_tiny", sizes, seed=seed, device=device)
card.assert_at_most("T1", "one is at most the threshold", 1.0, threshold)'''


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('fast = False\nseed = 0\ndevice = "cpu"\nthreshold = 2.0  # (a) b')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(TINY)]
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


def test_key_follows_notebook_and_parameters(tiny):
    key = reproduce.chapter_key(tiny, {"seed": 0})
    assert reproduce.chapter_key(tiny, {"seed": 0}) == key
    assert reproduce.chapter_key(tiny, {"seed": 1}) != key
    tiny.write_text(tiny.read_text().replace("threshold = 2.0", "threshold = 2.5"))
    assert reproduce.chapter_key(tiny, {"seed": 0}) != key


def test_unchanged_chapters_are_reused_and_failures_named(tiny, tmp_path, capsys):
    out = tmp_path / "build"
    assert reproduce.reproduce(out, {}, build=False) == 0
    first = json.loads((out / "state.json").read_text())["01_tiny"]
    assert first["status"] == "pass"
    assert json.loads((out / "records" / "01_tiny.json").read_text())["checks"][0]["status"] == "pass"
    capsys.readouterr()
    assert reproduce.reproduce(out, {}, build=False) == 0
    assert "unchanged since its run" in capsys.readouterr().out
    assert json.loads((out / "state.json").read_text())["01_tiny"] == first
    assert reproduce.reproduce(out, {"all": {"threshold": 0.5}}, build=False) == 1
    captured = capsys.readouterr()
    assert "FAILED: chapter 01_tiny" in captured.err and "T1 one is at most" in captured.err
    record = json.loads((out / "records" / "01_tiny.json").read_text())
    assert record["checks"][0]["status"] == "fail"      # the scorecard shows it red
    assert reproduce.reproduce(out, {"all": {"threshold": 0.5}}, build=False) == 1   # not reused


def test_only_on_a_fresh_folder_runs_the_chapter_and_says_why_no_book(tiny, tmp_path, capsys):
    other = tiny.with_name("02_other.ipynb")
    other.write_bytes(tiny.read_bytes())
    out = tmp_path / "build"
    assert reproduce.reproduce(out, {}, only=["01_tiny"]) == 0
    assert "book not built: 02_other not yet executed" in capsys.readouterr().out
    assert (out / "notebooks" / "01_tiny.ipynb").exists() and not (out / "html").exists()
