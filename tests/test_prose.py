"""Every number in a chapter's prose comes from the run: a digit sequence in a markdown cell must be
glued from the execution (MyST-NB ``{glue:text}``), or be one of the numbers the chapter's own code
states (a size, step count or tolerance written in a code cell, also as a percentage "70 %" of 0.70),
or sit where numbers are names or equation constants, or be on the short allow-list below with its
reason. Anything else is a number quoted from a run the book does not contain, and fails here.

Not checked: integers inside math (exponents, fractions, sizes written as $n = 2048$), code spans,
citations and cross-references, spec result numbers (R12, §2.4), equation/figure/section/chapter
numbers, years, and a heading's chapter number. Decimals inside math are checked like prose.
"""
import json
import re
from pathlib import Path

import pytest

from toysup.book import reproduce

NUMBER = re.compile(r"(?<![A-Za-z_\d.])\d(?:[\d,]*\d)?(?:\.\d+)?")   # not the 64 of float64
LITERAL = re.compile(r"(?<![\w.])\d[\d_]*(?:\.\d+)?(?:e-?\d+)?")
NAMES = re.compile(
    r"\bR\d+[a-z]?(?:\s*\((?:i{1,3}|[a-d])\))?|§\s?\d+(?:\.\d+)*|\b(?:19|20)\d\d\b"
    r"|\b(?:Eqs?\.|Equations?|Figs?\.|Figures?|Tables?|[Cc]hapters?|[Ss]ections?|pitfall|Theorem|Lemma)"
    r"\s*\(?\d+[a-z]?(?:\)?(?:\s*(?:[–-]|,|and)\s*\(?\d+[a-z]?\)?)*)")
SKIPPED = re.compile(r"```.*?```|\{glue(?::\w+)?\}`[^`]*`|\{\w+(?::\w+)?\}`[^`]*`|`[^`]*`|\]\([^)]*\)",
                     re.S)
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.S)

# Numbers that are not results of a run: the paper's own protocol and pointers into its text, and
# arithmetic on constants that the sentence itself states. Keep this short: a measured number is glued.
ALLOWED = {
    "01_toy_model": {"45,000": "the paper's training length", "0.9": "the paper's Adam β1",
                     "0.999": "the paper's Adam β2", "40,960": "held-out samples, n_eval of toysup",
                     "0.133": "(p/3)(1 - r) at the stated p = 0.8, r = 0.5 (arithmetic)",
                     "0.053": "v(p)(1 - r) at the stated p = 0.8, r = 0.5 (arithmetic)"},
    "02_symmetry": {"45,000": "the paper's training length", "3.1": "paper section", "3.2": "paper section",
                    "4.1": "paper section", "200": "rows per KS test, a constant of toysup.persian_rug",
                    "1000": "samples per KS test, a constant of toysup.persian_rug"},
    "04_activations": {"486": "the paper's line numbers", "492": "the paper's line numbers"},
    "10_uand_basis": {"0.48": "the paper's p = log²m/√d at m = 1000, d = 10⁴ (stated arithmetic)",
                      "480": "p m at that p (stated arithmetic)"},
    "14_trained_vs_constructed": {"99": "a percentile's name (99th)", "99.9": "a percentile's name",
                                  "7200": "2 (d_or + d_and) ReLUs for the stated widths (arithmetic)"},
}


def prose_numbers(markdown: str) -> list[str]:
    """The digit sequences of one markdown cell that the rules above check, in order."""
    text = SKIPPED.sub(" ", markdown)
    found: list[str] = []

    def math(match: re.Match) -> str:
        found.extend(n for n in NUMBER.findall(match.group(0)) if "." in n)
        return " "

    text = MATH.sub(math, text)
    text = NAMES.sub(" ", text)
    text = re.sub(r"^#+\s*\d+\.", " ", text, flags=re.M)
    return found + NUMBER.findall(text)


def code_values(code: str) -> set[float]:
    return {float(n.replace("_", "")) for n in LITERAL.findall(code)}


def unexplained(notebook: dict, chapter: str) -> list[str]:
    """Numbers of the chapter's markdown that no rule explains, as 'number (cell i)'."""
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    values = code_values(code)
    allowed = ALLOWED.get(chapter, {})
    bad = []
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        for number in prose_numbers(source):
            value = float(number.replace(",", ""))
            percent = re.search(re.escape(number) + r"\s?%", source) is not None
            stated = value in values or (percent and {value / 100, 1 + value / 100} & values)
            if not stated and number not in allowed:
                bad.append(f"{number} (cell {i})")
    return bad


@pytest.mark.parametrize("notebook", reproduce.chapters(), ids=lambda p: p.stem)
def test_every_number_in_the_prose_is_glued_stated_in_code_or_allowed(notebook: Path) -> None:
    bad = unexplained(json.loads(notebook.read_text()), notebook.stem)
    assert not bad, (f"{notebook.stem}: numbers in the prose that do not come from the run: {bad}. Glue them "
                     "from a check cell (myst_nb.glue) or, if they are not results, add them to ALLOWED in "
                     "tests/test_prose.py with the reason")


def test_the_rules_catch_a_quoted_number_and_pass_glued_stated_and_named_ones() -> None:
    cell = {"cell_type": "markdown", "source": [
        "In Eq. (5) and Figs. 3-6 of R12, §2.4 (2024): tolerance 70 %, {glue:text}`worst:.3f`, $n = 2048$, "
        "`n = 77`, and a quoted 5.02 % from another run, $5.9\\cdot10^{-5}$."]}
    code = {"cell_type": "code", "source": ["card.assert_at_least('R3a', 'x', f, 0.70, kind='evidence')"]}
    assert unexplained({"cells": [cell, code]}, "99_x") == ["5.9 (cell 0)", "5.02 (cell 0)"]
