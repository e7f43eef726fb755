"""The registry of expected checks (toysup/book/registry.py) against made-up records: each way a claim
can quietly stop being checked is reported."""
import pytest

from toysup.book import registry, reproduce

TABLE = {"01_x": {"R1": registry.claim("evidence", "consistency"),
                  "R2": registry.claim("regression", optional=("consistency",), may_deviate=True)}}


def _check(claim, kind, status="pass"):
    return {"claim": claim, "kind": kind, "status": status, "statement": f"{claim} {kind}"}


GOOD = [_check("R1", "evidence"), _check("R1", "consistency"), _check("R2", "regression"),
        _check("R2", "regression", "deviation")]


def test_records_that_match_the_table_have_no_problems():
    assert registry.problems("01_x", GOOD, TABLE) == []
    assert registry.problems("01_x", [*GOOD, _check("R2", "consistency")], TABLE) == []
    deferred = [_check("R1", "evidence", "book-scale"), *GOOD[1:]]    # fast mode: still on the page
    assert registry.problems("01_x", deferred, TABLE) == []


@pytest.mark.parametrize(("records", "message"), [
    (GOOD[2:], "R1: declared but no check recorded"),
    ([_check("R1", "consistency"), _check("R1", "consistency"), *GOOD[2:]], "no asserted evidence check"),
    ([_check("R1", "evidence", "deviation"), *GOOD[1:]], "no asserted evidence check"),
    ([*GOOD[:2], _check("R1", "evidence", "deviation"), *GOOD[2:]], "R1: recorded a known deviation"),
    ([*GOOD, _check("R1", "regression")], "a regression check, a kind the registry does not declare"),
    ([*GOOD, _check("R9", "evidence")], "R9: recorded but not declared"),
])
def test_each_way_of_losing_a_check_is_reported(records, message):
    found = registry.problems("01_x", records, TABLE)
    assert any(message in line for line in found), found


def test_every_chapter_is_declared_and_nothing_else():
    assert sorted(registry.EXPECTED) == [nb.stem for nb in reproduce.chapters()]
    assert registry.problems("99_new", [], TABLE) == ["99_new is not in toysup/book/registry.py: declare "
                                                      "the claims it checks"]


def test_a_claim_must_require_known_kinds():
    with pytest.raises(ValueError, match="required"):
        registry.claim()
    with pytest.raises(ValueError, match="required"):
        registry.claim("proof")
