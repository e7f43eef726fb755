"""Every chapter executed in fast mode through papermill: its Check cells are assertions, so a claim
that does not reproduce fails here. The executed copies land in _build/fast/notebooks/, where the
second stage of ``make test`` re-executes them cell by cell with nbval and builds the book from them
(tests/book/test_book.py).
"""
from pathlib import Path

import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ROOT / "_build" / "fast"
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_and_checks_pass_in_fast_mode(notebook: Path) -> None:
    out = FAST / "notebooks" / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(notebook, out, parameters={"fast": True}, kernel_name="python3",
                               cwd=notebook.parent, progress_bar=False)
