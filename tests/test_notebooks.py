"""Every chapter executed in fast mode through papermill (its Check cells are assertions, so a claim
that does not reproduce fails here), then the book built from those executions with -W -n.

Runs on one xdist worker in file order (``--dist loadfile``): the book test uses the chapters'
executed copies in _build/fast/notebooks/, which the nbval pass of ``make test`` re-executes.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FAST = ROOT / "_build" / "fast"
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_and_checks_pass_in_fast_mode(notebook: Path) -> None:
    out = FAST / "notebooks" / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(notebook, out, parameters={"fast": True}, kernel_name="python3",
                               cwd=notebook.parent, progress_bar=False)


def _stage_book() -> Path:
    """A copy of the book's sources whose chapters are the fast-mode executions, set not to re-run."""
    stage = FAST / "book"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in ("_toc.yml", "book"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, stage / name)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (stage / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
    (stage / "notebooks").mkdir()
    for chapter in CHAPTERS:
        executed = FAST / "notebooks" / chapter.name
        assert executed.exists(), f"{chapter.name} was not executed: run the chapter tests first"
        shutil.copy2(executed, stage / "notebooks" / chapter.name)
    return stage


def test_book_builds_without_warnings_and_shows_chapter_figures() -> None:
    stage = _stage_book()
    jb = str(Path(sys.executable).parent / "jupyter-book")
    build = subprocess.run([jb, "build", str(stage), "-W", "-n",
                            "--keep-going"], capture_output=True, text=True, cwd=stage)
    assert build.returncode == 0, f"book build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    html = stage / "_build" / "html"
    page = (html / "notebooks" / "01_toy_model.html").read_text()
    figures = page.count('<img alt="_images/') + page.count('src="../_images/')
    assert figures >= 3, f"chapter 1 shows {figures} figures, expected at least 3"
    assert (html / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000
    assert "mathjax/tex-svg.js" in page and "cdn.jsdelivr" not in page
