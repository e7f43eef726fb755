"""toysup.book.chapter: a chapter's sizes filled from one table, the reader's values winning."""
import pytest

from toysup.book import chapter


def test_unset_parameters_take_the_mode_default_and_set_ones_win():
    ns = {"n": None, "steps": 7, "s": None}
    sizes = chapter.resolve(ns, fast=True, scale="book", n=(1, 2, 3), steps=(10, 20, 30), s=5)
    assert ns == {"n": 1, "steps": 7, "s": 5}
    assert sizes == {"n": 1, "steps": 7, "s": 5, "mode": "fast"}
    ns = {"n": None}
    assert chapter.resolve(ns, fast=False, scale="paper", n=(1, 2, 3)) == {"n": 3, "mode": "paper"}


def test_lists_are_values_not_modes():
    ns = {"widths": None}
    chapter.resolve(ns, fast=False, scale="book", widths=[1, 2, 3])
    assert ns["widths"] == [1, 2, 3]


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(scale="huge", n=(1, 2, 3)), "scale must be one of"),
    (dict(scale="book", m=(1, 2, 3)), "'m' has a default but is not a parameter"),
    (dict(scale="book", n=(1, 2)), r"\(fast, book, paper\)"),
])
def test_bad_tables_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        chapter.resolve({"n": None}, fast=False, **kwargs)


def test_cpu_only_refuses_a_gpu():
    assert chapter.cpu_only("cpu") == "cpu"
    with pytest.raises(ValueError, match="device.*CPU only"):
        chapter.cpu_only("cuda")
