"""The checks each chapter is expected to make: one table, keyed by chapter, of the claims it checks
and the kinds of their checks (``toysup.book.scorecard.KINDS``).

A chapter's number of checks is not fixed (loops over sizes, checks that need a size only the book
scale runs), so a claim could quietly lose its evidence, move behind an ``if ... else print`` or turn
into a known deviation while every assertion still passes. ``problems`` compares one execution's
records with this table; tests/test_notebooks.py fails on any problem after running each chapter:

* a declared claim with no record, or a required kind with neither an asserted (pass or fail) check
  nor one deferred to book scale (``Scorecard.at_book_scale``, fast mode only: the claim stays on the
  page as "checked at book scale");
* a check of a kind the claim does not declare (a check whose kind changed, or a new claim);
* a known deviation of a claim not declared ``may_deviate``.

``required``: kinds every execution records, in every mode; ``optional``: kinds that only some modes
record (a fast-mode restatement of a size the fast sizes do not reach). A claim without an evidence
kind is one the chapter can only check by construction or against reference numbers; the scorecard
page lists it as a claim without evidence.
"""
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toysup.book.scorecard import KINDS


@dataclass(frozen=True)
class Claim:
    required: frozenset[str]
    optional: frozenset[str] = field(default_factory=frozenset)
    may_deviate: bool = False

    def __post_init__(self) -> None:
        bad = (self.required | self.optional) - set(KINDS)
        if bad or not self.required:
            raise ValueError(f"required must be a non-empty set of kinds from {KINDS}; got "
                             f"required={sorted(self.required)}, optional={sorted(self.optional)}")


def claim(*required: str, optional: tuple[str, ...] = (), may_deviate: bool = False) -> Claim:
    return Claim(frozenset(required), frozenset(optional), may_deviate)


E, R, C = KINDS
EXPECTED: dict[str, dict[str, Claim]] = {
    "01_toy_model": {"R2": claim(E, C), "R12": claim(E, may_deviate=True), "§3.2": claim(C, optional=(E,), may_deviate=True)},
    "02_symmetry": {
        "R3a": claim(E, may_deviate=True), "R3b": claim(E), "R3c": claim(E, may_deviate=True),
        "R4": claim(E), "R5": claim(E, may_deviate=True),
        "R6": claim(E, C, may_deviate=True), "R14": claim(E, may_deviate=True), "R9b": claim(E, may_deviate=True),
        "R1 (a)": claim(E), "R1 (b)": claim(E, may_deviate=True), "R1 (c)": claim(E, may_deviate=True),
        "§3.2": claim(C, optional=(E,), may_deviate=True)},
    "03_analytic_loss": {
        "R6": claim(E), "R7 (i)": claim(C), "R7 (ii)": claim(E), "R7 (iii)": claim(R),
        "R12": claim(C), "R1 (d)": claim(E, may_deviate=True), "R10": claim(R, E)},
    "04_activations": {"R11": claim(R, E, may_deviate=True), "§3.2": claim(C, optional=(E,), may_deviate=True)},
    "05_persian_rug": {"R8": claim(C), "R9a": claim(E, C, may_deviate=True), "R12": claim(C),
                       "R13": claim(C)},
    "10_uand_basis": {"§2.4": claim(E, C), "§1.3": claim(E, C, may_deviate=True), "§2.3": claim(E, C, may_deviate=True),
                      "§6": claim(E, may_deviate=True)},
    "11_uand_superposition": {"§3.3": claim(E, C), "§3.2": claim(E, C, may_deviate=True)},
    "12_boolean_circuits": {"§4.1": claim(E, C, may_deviate=True), "§4.2": claim(E, C), "§4.3": claim(E)},
    "13_deep_circuits": {"§5.4": claim(E, C), "§5.1": claim(E, C, may_deviate=True), "§9": claim(E, C),
                         "§1.2": claim(E, may_deviate=True)},
    "14_trained_vs_constructed": {"§6": claim(E, C), "§9": claim(E), "§2.1": claim(C), "§2.2": claim(E, C),
                                  "§10": claim(E, C), "§6.1": claim(E, C, may_deviate=True)},
}


def problems(chapter: str, checks: list[Mapping[str, Any]],
             expected: Mapping[str, Mapping[str, Claim]] = EXPECTED) -> list[str]:
    """What one execution's records (``record["checks"]`` of toysup.book.scorecard) do differently from
    the table, as readable lines; empty when they agree."""
    if chapter not in expected:
        return [f"{chapter} is not in toysup/book/registry.py: declare the claims it checks"]
    declared = expected[chapter]
    found = []
    for name, spec in declared.items():
        mine = [c for c in checks if c["claim"] == name]
        if not mine:
            found.append(f"{chapter} {name}: declared but no check recorded")
            continue
        asserted = {c["kind"] for c in mine if c["status"] != "deviation"}   # "book-scale" included
        for kind in sorted(spec.required - asserted):
            found.append(f"{chapter} {name}: no asserted {kind} check (declared required)")
        if not spec.may_deviate and any(c["status"] == "deviation" for c in mine):
            found.append(f"{chapter} {name}: recorded a known deviation, which the registry does not allow")
    for c in checks:
        spec = declared.get(c["claim"])
        if spec is None:
            found.append(f"{chapter} {c['claim']}: recorded but not declared ({c['statement']})")
        elif c["kind"] not in spec.required | spec.optional:
            found.append(f"{chapter} {c['claim']}: a {c['kind']} check, a kind the registry does not "
                         f"declare for it ({c['statement']})")
    return list(dict.fromkeys(found))
