"""The book built from the chapters' fast-mode executions (``toysup.book.reproduce``, as ``make book`` builds
it) with -W -n --keep-going, then every page loaded in headless Chromium with no network: math typeset,
figures loaded, no traceback or warning, the scorecard listing every chapter. Screenshots of every
page are saved under _build/fast/screenshots/. Runs in the second stage of ``make test``, after
tests/test_notebooks.py has executed every chapter into _build/fast/notebooks/.
"""
import json
from html import escape as html_escape
import shutil
from pathlib import Path

import pytest

import pagecheck
from toysup import paths
from toysup.book import reproduce

FAST = paths.BUILD / "fast"
CHAPTERS = [nb.stem for nb in reproduce.chapters()]
PAGES = ["book/intro", *[f"notebooks/{c}" for c in CHAPTERS], "book/scorecard", "book/mutants", "book/notation",
         "book/references", "book/execution"]


@pytest.fixture(scope="module")
def html() -> Path:
    for chapter in CHAPTERS:
        assert (FAST / "notebooks" / f"{chapter}.ipynb").exists(), \
            f"{chapter} was not executed: run the chapter tests (tests/test_notebooks.py) first"
    stage = reproduce.stage_book(FAST / "notebooks", FAST / "records", FAST / "book")
    build = reproduce.build_book(stage, FAST / "html")
    assert build.returncode == 0, f"book build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    return FAST / "html"


@pytest.fixture(scope="module")
def browser(html: Path):
    with pagecheck.serve(html) as base, pagecheck.chromium(FAST / "chromium-profile") as driver:
        yield driver, base


def test_book_serves_math_locally(html: Path) -> None:
    assert (html / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000
    for page in PAGES:
        text = (html / f"{page}.html").read_text()
        assert "cdn.jsdelivr" not in text, f"{page}: MathJax would load from a CDN"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_in_chromium(browser, page: str) -> None:
    driver, base = browser
    report = pagecheck.inspect(driver, base + page + ".html", FAST / "screenshots" / f"{Path(page).name}.png")
    found = pagecheck.problems(report, base, needs_figure=page.startswith("notebooks/"))
    assert not found, f"{page}:\n" + "\n".join(found)
    if page.startswith("notebooks/"):
        assert report["math"] > 0, f"{page}: no math on a chapter page"
    if page == "book/scorecard":
        linked = {link.split("#")[0].removeprefix(base) for link in report["links"]}
        missing = [c for c in CHAPTERS if f"notebooks/{c}.html" not in linked]
        assert not missing, f"the scorecard does not list {missing}"


def test_scorecard_page_shows_every_recorded_check(html: Path) -> None:
    page = (html / "book" / "scorecard.html").read_text()
    for chapter in CHAPTERS:
        record = json.loads((FAST / "records" / f"{chapter}.json").read_text())
        for check in record["checks"]:
            assert html_escape(check["statement"]) in page, \
                f"{chapter}: {check['claim']} missing from the scorecard"
    assert "not executed" not in page
    checks = [c for chapter in CHAPTERS
              for c in json.loads((FAST / "records" / f"{chapter}.json").read_text())["checks"]]
    evidence = sum(c["kind"] == "evidence" and c["status"] == "pass" for c in checks)
    assert f"of which <b>{evidence}</b> are evidence" in page     # the summary counts evidence apart
    assert "claims without evidence" in page


def test_page_check_catches_a_missing_figure_and_missing_math(browser, html: Path, tmp_path: Path) -> None:
    """The browser check itself: a copy of a chapter with its figure files deleted, and one whose
    MathJax script is gone, must both be reported."""
    driver, _ = browser
    broken = tmp_path / "html"
    shutil.copytree(html, broken)
    page = broken / "notebooks" / f"{CHAPTERS[0]}.html"
    for image in (broken / "_images").glob("*.png"):
        image.unlink()
    (broken / "_static" / "mathjax" / "tex-svg.js").unlink()
    with pagecheck.serve(broken) as base:
        report = pagecheck.inspect(driver, base + f"notebooks/{page.name}")
        found = pagecheck.problems(report, base, needs_figure=True)
    assert any("figures that did not load" in line for line in found), found
    assert any("not typeset" in line for line in found), found
