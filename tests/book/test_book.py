"""The book built from the chapters' fast-mode executions with -W -n --keep-going: no warning, every
page present, chapter figures and offline math in place. Runs in the second stage of ``make test``,
after tests/test_notebooks.py has executed every chapter into _build/fast/notebooks/."""
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FAST = ROOT / "_build" / "fast"
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


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
    assert (html / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000
    for chapter in CHAPTERS:
        page = (html / "notebooks" / f"{chapter.stem}.html").read_text()
        figures = page.count("<img ")
        assert figures >= (4 if chapter.stem == "01_toy_model" else 1), \
            f"{chapter.stem}: {figures} figures in the rendered page"
        assert "Traceback" not in page, f"{chapter.stem}: a traceback is rendered"
        assert "cdn.jsdelivr" not in page, f"{chapter.stem}: MathJax would load from a CDN"
        if 'class="math' in page:
            assert "_static/mathjax/tex-svg.js" in page, f"{chapter.stem}: MathJax is not served locally"
