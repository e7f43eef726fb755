"""The mutation run's table of mistakes (toysup/book/mutants.py): each mistake still matches the code
it targets exactly once, applies only to the copy, and the result table marks survivors."""
import pytest

from toysup.book import mutants, reproduce
from toysup.paths import REPO_ROOT

CHAPTERS = {nb.stem for nb in reproduce.chapters()}


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda m: m.name)
def test_each_mistake_targets_one_line_of_current_code(mutant):
    assert mutant.chapter in CHAPTERS
    assert (REPO_ROOT / mutant.path).read_text().count(mutant.old) == 1
    assert "\n" not in mutant.old and mutant.old != mutant.new


def test_enough_mutants_across_both_papers_and_a_ci_subset_in_each():
    assert len(mutants.MUTANTS) >= 12 and len({m.name for m in mutants.MUTANTS}) == len(mutants.MUTANTS)
    ci = [m for m in mutants.MUTANTS if m.ci]
    assert len(ci) >= 4
    assert {m.chapter < "10" for m in ci} == {True, False}     # Persian rug (01-05) and CiS (10-14)


def test_prepare_mutates_the_copy_only(tmp_path):
    mutant = mutants.MUTANTS[0]
    root = mutants.prepare(mutant, tmp_path / "copy")
    assert mutant.new in (root / mutant.path).read_text()
    assert mutant.old in (REPO_ROOT / mutant.path).read_text()
    assert (root / "notebooks" / f"{mutant.chapter}.ipynb").exists()


def test_a_changed_target_names_the_mutant(tmp_path):
    stale = mutants.Mutant("stale", "x", "toysup/paths.py", "no such line", "y", "01_toy_model")
    with pytest.raises(ValueError, match="mutant stale"):
        mutants.prepare(stale, tmp_path / "copy")


def test_the_table_marks_survivors():
    results = [{"mutant": "a", "mistake": "m", "chapter": "01_toy_model", "caught_by": ["R2 [evidence] x"],
                "consistency": [], "error": "", "seconds": 3.0},
               {"mutant": "b", "mistake": "m|n", "chapter": "05_persian_rug", "caught_by": [],
                "consistency": ["R8 y"], "error": "", "seconds": 4.0}]
    text = mutants.table(results, title="T")
    assert "**1 of 2 mutants caught**" in text and "**SURVIVED**" in text and "1 consistency" in text
    assert "m\\|n" in text
