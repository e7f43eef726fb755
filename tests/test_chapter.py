"""toysup.book.chapter: a chapter's parameters checked against its schema, filled from one table per
mode, the reader's values winning, strings from papermill and YAML read as their type or refused."""
import json

import numpy as np
import pytest

from toysup.book import chapter

PARAMETERS = '''fast = False
scale = "book"
seed = 0
device = "cpu"
n = None         # n, features
widths = None    # values of d
probs = None     # feature probabilities p
exact = None     # use the exact formula'''


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A chapter "01_tiny" whose parameters cell is PARAMETERS, in the working directory."""
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": PARAMETERS,
            "outputs": [], "execution_count": None}
    (tmp_path / "01_tiny.ipynb").write_text(json.dumps({"cells": [cell]}))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "01_tiny.ipynb"


def namespace(**given):
    ns = {"fast": False, "scale": "book", "seed": 0, "device": "cpu",
          "n": None, "widths": None, "probs": None, "exact": None}
    return {**ns, **given}


TABLE = dict(n=chapter.count((8, 16, 32), low=2), widths=chapter.counts([4, 8]),
             probs=chapter.fractions(([0.1], [0.1, 0.2], [0.1, 0.2, 0.4])), exact=chapter.flag((False, True, True)))


def test_unset_parameters_take_the_mode_default_and_set_ones_win(tiny):
    ns = namespace(fast=True, widths=[3])
    sizes = chapter.resolve(ns, "01_tiny", **TABLE)
    assert (ns["n"], ns["widths"], ns["probs"], ns["exact"]) == (8, [3], [0.1], False)
    assert sizes == {"n": 8, "widths": [3], "probs": [0.1], "exact": False, "mode": "fast"}
    ns = namespace(scale="paper")
    assert chapter.resolve(ns, "01_tiny", **TABLE)["mode"] == "paper" and ns["n"] == 32


def test_strings_from_papermill_and_yaml_are_read_as_their_type(tiny):
    ns = namespace(fast="false", seed=np.int64(3), n="2e3", widths=["4", 8.0], probs="0.5".split(), exact="TRUE")
    chapter.resolve(ns, "01_tiny", **TABLE)
    assert (ns["fast"], ns["seed"], ns["n"], ns["widths"], ns["probs"], ns["exact"]) == \
        (False, 3, 2000, [4, 8], [0.5], True)
    assert type(ns["seed"]) is int and type(ns["n"]) is int


def test_the_table_shows_every_parameter_with_its_meaning(tiny):
    sizes = chapter.resolve(namespace(n=10), "01_tiny", **TABLE)
    assert list(sizes.schema) == ["fast", "scale", "seed", "device", "n", "widths", "probs", "exact"]
    page = sizes._repr_html_()
    assert "<td><code>n</code></td><td>integer in [2, inf)</td><td>10</td><td>8 / 16 / 32</td><td>n, features</td>" in page
    assert "<td><code>widths</code></td><td>non-empty list of integers in [1, inf)</td><td>[4, 8]</td><td>[4, 8]</td>" in page
    markdown = chapter.markdown_table(sizes.schema)
    assert "| probs | non-empty list of numbers in (0, 1] | [0.1] / [0.1, 0.2] / [0.1, 0.2, 0.4] | " \
           "feature probabilities p |" in markdown
    assert chapter.shown_value(list(range(20))) == "[0, 1, …, 19] (20 values)"


@pytest.mark.parametrize(("table", "match"), [
    (dict(TABLE, m=chapter.count(3)), r"declared parameters \['m'\] are not in its parameters cell"),
    ({k: v for k, v in TABLE.items() if k != "exact"}, r"\['exact'\] of the cell are not declared"),
    (dict(TABLE, n=(1, 2, 3)), "declare it with chapter.count"),
    (dict(TABLE, seed=chapter.count(1)), "'seed' is common to every chapter"),
    (dict(TABLE, n=chapter.count((1, 2))), r"\(fast, book, paper\)"),
    (dict(TABLE, n=chapter.count((1, 2, 3), low=2)), r"n \(default in fast mode\) must be an integer in \[2, inf\)"),
])
def test_bad_schemas_are_refused(tiny, table, match):
    with pytest.raises(ValueError, match=match):
        chapter.resolve(namespace(), "01_tiny", **table)


def test_the_parameters_cell_must_match_the_schema(tiny):
    tiny.write_text(tiny.read_text().replace('n = None ', 'n = 5    ').replace("# use the exact formula", ""))
    with pytest.raises(ValueError, match="must set n = None"):
        chapter.resolve(namespace(), "01_tiny", **TABLE)
    tiny.write_text(tiny.read_text().replace('n = 5    ', 'n = None '))
    with pytest.raises(ValueError, match="'exact' needs its meaning as a comment"):
        chapter.resolve(namespace(), "01_tiny", **TABLE)
    with pytest.raises(ValueError, match="no 02_missing.ipynb"):
        chapter.resolve(namespace(), "02_missing", **TABLE)


def test_a_cpu_only_chapter_refuses_a_gpu(tiny):
    with pytest.raises(ValueError, match="device must be 'cpu', got 'cuda'"):
        chapter.resolve(namespace(device="cuda"), "01_tiny", **TABLE, device=chapter.cpu_device())
