"""Every chapter executed in fast mode through papermill (``toysup.book.reproduce.execute_chapter``): its
Check cells are scorecard assertions, so a claim that does not reproduce fails here. The executed
copies land in _build/fast/notebooks/ and their scorecard records in _build/fast/records/, from which
the second stage of ``make test`` builds the book (tests/book/test_book.py), while nbval re-executes
each copy cell by cell. Each execution's records must also match the chapter's entry in the registry
of expected checks (toysup/book/registry.py): every declared claim checked, with its declared kinds,
and a known deviation only where the registry allows one.
"""
import json
from pathlib import Path

import pytest

from toysup import paths
from toysup.book import registry, reproduce

FAST = paths.BUILD / "fast"
CHAPTERS = reproduce.chapters()


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_and_checks_pass_in_fast_mode(notebook: Path) -> None:
    reproduce.execute_chapter(notebook, FAST / "notebooks", {"fast": True}, FAST / "records",
                              progress=False)
    record = json.loads((FAST / "records" / f"{notebook.stem}.json").read_text())
    assert record["mode"] == "fast"
    assert record["checks"], f"{notebook.stem} recorded no check on the scorecard"
    assert all(c["status"] in ("pass", "deviation", "book-scale") for c in record["checks"])
    found = registry.problems(notebook.stem, record["checks"])
    assert not found, "the records differ from toysup/book/registry.py:\n" + "\n".join(found)
