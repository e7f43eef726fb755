import json

import numpy as np
import pytest

from toysup import paths
from toysup.book import scorecard

SIZES = {"n_features": 512, "probs": [0.1, 0.2], "mode": "fast"}


def _card(tmp_path, chapter="01_toy_model"):
    return scorecard.Scorecard(chapter, SIZES, seed=3, device="cpu", directory=tmp_path)


def _saved(tmp_path, chapter="01_toy_model"):
    return json.loads((tmp_path / f"{chapter}.json").read_text())


def test_passing_checks_are_printed_and_recorded_with_the_run(tmp_path, capsys):
    card = _card(tmp_path)
    card.assert_between("R2", "mean diagonal", 1.23, 1.1, 1.4, kind="evidence")
    card.assert_at_most("R12", "worst deviation", 0.008, 0.03, kind="evidence")
    card.assert_at_least("R3a", "fraction falling", 0.9, 0.7, kind="evidence")
    card.assert_close("R7", "table value", 1.0004, 1.0, rel=0.005, kind="regression")
    card.assert_that("R13", "controls not XOR", "0.66", "> 0.05", True, kind="consistency")
    out = capsys.readouterr().out
    assert out.count("PASS") == 5 and "measured 1.23, expected in [1.1, 1.4]" in out
    saved = _saved(tmp_path)
    assert saved["mode"] == "fast" and saved["seed"] == 3 and "mode" not in saved["sizes"]
    assert saved["sizes"]["probs"] == [0.1, 0.2] and saved["torch"] and saved["machine"]
    assert [c["claim"] for c in saved["checks"]] == ["R2", "R12", "R3a", "R7", "R13"]
    assert {c["status"] for c in saved["checks"]} == {"pass"}
    assert saved["checks"][3]["measured"].startswith("1.0004")


@pytest.mark.parametrize(("method", "args"), [
    ("assert_between", (1.5, 1.1, 1.4)), ("assert_at_most", (0.04, 0.03)), ("assert_at_least", (0.5, 0.7)),
    ("assert_close", (1.01, 1.0)), ("assert_at_most", (0.03, 0.03)),
])
def test_a_failing_check_is_recorded_before_it_raises(tmp_path, method, args):
    card = _card(tmp_path)
    kwargs = {"rel": 0.005} if method == "assert_close" else {}
    if args == (0.03, 0.03):
        kwargs = {"strict": True}
    with pytest.raises(AssertionError, match="R9 a claim"):
        getattr(card, method)("R9", "a claim", *args, kind="evidence", **kwargs)
    assert _saved(tmp_path)["checks"][-1]["status"] == "fail"


def test_deviation_is_recorded_and_asserts_nothing(tmp_path, capsys):
    card = _card(tmp_path)
    card.deviation("R3c", "Var(b) falls with n", "[2e-4, 9e-5, 1e-4]", "decreasing", "short training", kind="evidence")
    assert "NOT REPRODUCED" in capsys.readouterr().out
    assert _saved(tmp_path)["checks"][0]["status"] == "deviation"
    assert "1 known deviations" in card.summary()


def test_known_deviation_records_a_pass_or_a_deviation_and_never_raises(tmp_path):
    card = _card(tmp_path)
    assert card.known_deviation("R9a", "excess within 3 %", 0.02, "<= 0.03", True, reason="small pn", kind="evidence")
    assert not card.known_deviation("R9a", "excess within 3 %", 0.04, "<= 0.03", np.False_, reason="small pn", kind="evidence")
    saved = _saved(tmp_path)["checks"]
    assert [c["status"] for c in saved] == ["pass", "deviation"]
    assert saved[1]["tolerance"] == "small pn" and saved[1]["measured"] == "0.04"


def test_a_new_execution_starts_an_empty_record(tmp_path):
    _card(tmp_path).assert_at_most("R1", "x", 0.0, 1.0, kind="evidence")
    _card(tmp_path)
    assert _saved(tmp_path)["checks"] == []


def test_a_new_execution_removes_what_a_killed_writer_left(tmp_path):
    stale = tmp_path / ".01_toy_model.json.0123456789ab.tmp"    # a run killed mid-write (SIGKILL)
    stale.write_text("{half")
    _card(tmp_path)
    assert not stale.exists() and _saved(tmp_path)["checks"] == []


def test_records_go_where_the_environment_says(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYSUP_RECORDS", str(tmp_path / "r"))
    monkeypatch.setenv("TOYSUP_KEY", "abc123")
    scorecard.Scorecard("02_symmetry", SIZES, seed=0).assert_at_most("R4", "spread", 0.01, 0.05, kind="evidence")
    saved = _saved(tmp_path / "r", "02_symmetry")
    assert saved["checks"][0]["claim"] == "R4" and saved["key"] == "abc123"
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [".02_symmetry.json.lock", "02_symmetry.json"]  # no temporary


def test_records_of_a_run_by_hand_stay_out_of_the_build_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TOYSUP_RECORDS", raising=False)
    monkeypatch.delenv("TOYSUP_KEY", raising=False)
    assert scorecard.records_dir() == paths.RECORDS == paths.OUTPUTS / "records"
    assert not scorecard.records_dir().is_relative_to(paths.BUILD)
    monkeypatch.setattr(paths, "RECORDS", tmp_path / "by-hand")
    card = scorecard.Scorecard("02_symmetry", SIZES, seed=0)
    assert _saved(tmp_path / "by-hand", "02_symmetry")["key"] is None
    assert card.summary().endswith(f"recorded in {paths.shown(tmp_path / 'by-hand' / '02_symmetry.json')}")
    card.path = paths.OUTPUTS / "records" / "02_symmetry.json"
    assert card.summary().endswith("recorded in outputs/records/02_symmetry.json")


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(ValueError, match="chapter"):
        scorecard.Scorecard("notebooks/01", SIZES, seed=0, directory=tmp_path)
    with pytest.raises(ValueError, match="mode"):
        scorecard.Scorecard("01_toy_model", {"n": 1}, seed=0, directory=tmp_path)
    with pytest.raises(ValueError, match="target"):
        _card(tmp_path).assert_close("R1", "x", 0.1, 0.0, rel=0.1, kind="evidence")


def test_values_are_shown_apart_when_rounding_would_hide_a_failure(tmp_path, capsys):
    card = _card(tmp_path)
    with pytest.raises(AssertionError):
        card.assert_at_most("R1", "x", 0.30004, 0.3, kind="evidence")
    assert "measured 0.30004, expected <= 0.3" in capsys.readouterr().out


def test_numpy_values_are_recorded_readably(tmp_path):
    card = scorecard.Scorecard("01_toy_model", {**SIZES, "widths": np.geomspace(1, 4, 3)},
                               seed=np.int64(2), directory=tmp_path)
    card.assert_that("R1", "flag", np.True_, True, np.True_, kind="evidence")
    saved = _saved(tmp_path)
    assert saved["seed"] == 2 and saved["sizes"]["widths"] == [1.0, 2.0, 4.0]
    assert saved["checks"][0]["measured"] == "True"


def test_a_relative_records_path_is_refused(monkeypatch):
    monkeypatch.setenv("TOYSUP_RECORDS", "records")
    with pytest.raises(ValueError, match="TOYSUP_RECORDS must be an absolute path"):
        scorecard.records_dir()


def test_every_check_records_its_kind_and_must_name_one(tmp_path):
    card = _card(tmp_path)
    card.assert_at_most("R1", "x", 0.0, 1.0, kind="consistency")
    card.deviation("R2", "y", 1, 2, "reason", kind="evidence")
    assert [(c["kind"], c["status"]) for c in _saved(tmp_path)["checks"]] == [("consistency", "pass"),
                                                                              ("evidence", "deviation")]
    with pytest.raises(TypeError, match="kind"):
        card.assert_at_most("R1", "x", 0.0, 1.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        card.assert_at_most("R1", "x", 0.0, 1.0, kind="proof")
    assert "1 checks pass (0 of them evidence)" in card.summary()


def test_record_only_mode_records_a_failure_without_raising(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYSUP_RECORD_ONLY", "1")
    _card(tmp_path).assert_at_most("R1", "x", 2.0, 1.0, kind="evidence")
    assert _saved(tmp_path)["checks"][0]["status"] == "fail"


def test_a_check_deferred_to_book_scale_is_recorded_only_in_fast_mode(tmp_path, capsys):
    card = _card(tmp_path)
    card.at_book_scale("R9b", "loss / L* at n=2048", "in [0.85, 1.05]", needs="n = 2048; largest n here 512",
                       kind="evidence")
    saved = _saved(tmp_path)["checks"][0]
    assert (saved["status"], saved["measured"], saved["tolerance"]) == \
        ("book-scale", "not run in fast mode", "n = 2048; largest n here 512")
    assert "BOOK SCALE [evidence] R9b loss / L* at n=2048" in capsys.readouterr().out
    assert "1 checked at book scale only" in card.summary()
    book = scorecard.Scorecard("01_toy_model", {**SIZES, "mode": "book"}, seed=3, directory=tmp_path / "b")
    with pytest.raises(ValueError, match="at_book_scale is for fast mode, this run is 'book'"):
        book.at_book_scale("R9b", "loss / L* at n=2048", "in [0.85, 1.05]", needs="n = 2048", kind="evidence")
