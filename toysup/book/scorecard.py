"""The reproduction scorecard: every check of a chapter is recorded and enforced by the same call.

    card = Scorecard("01_toy_model", sizes, seed=seed, device=device)
    card.assert_between("R2", "mean diagonal of W", s.diag_mean, 1.1, 1.4, kind="evidence")
    card.assert_at_most("R12", "trained linear models on v(1-r): worst |loss/v(1-r) - 1|", dev, 0.03,
                        kind="evidence")

Every check says its kind (``KINDS``), chosen by asking which plausible mistake would make it fail:
"evidence" (a mistake in the code or a false claim in the paper would), "regression" (agreement with
reference values computed elsewhere from the same reconstructed equations: it catches a change in the
code, not an error shared with the reference), "consistency" (holds by construction: an identity, a
bound the method guarantees, a restatement that small models always satisfy; a sanity check only).

Each call prints one line (PASS/FAIL, measured against expected), appends a record to the chapter's
JSON file and raises AssertionError if the check fails — after writing the record, so a failed claim
still shows, red, on the book's scorecard page (book/_ext/scorecard.py renders the files). A known
non-reproduction is recorded with ``deviation`` (or ``known_deviation``, which records a pass when the
claim does hold): it is shown as "not reproduced" and asserts nothing. A claim about sizes that a run
does not reach (fast mode) is recorded with ``at_book_scale``, shown as "checked at book scale", instead
of being restated in a form that small models always satisfy.

Record files: ``<records>/<chapter>.json``, one per chapter, rewritten from scratch when a chapter
creates its Scorecard (so a rerun never keeps a stale check), each time atomically
(``toysup.storage.atomic_write``: a reader sees the file before or after a check, never half of it),
under the file's lock (``toysup.storage.locked``), so a run killed mid-write leaves no temporary behind
once the chapter runs again.
``<records>`` is ``$TOYSUP_RECORDS`` if set (``toysup.book.reproduce`` sets it per build), else
``outputs/records`` of the repository: a chapter run by hand never writes where ``make book`` reads.

File layout: {"chapter", "key", "mode", "sizes", "seed", "device", "machine", "torch", "started",
"checks": [{"claim", "statement", "kind", "measured", "expected", "tolerance", "status"}, ...]} with
status "pass", "fail", "deviation" or "book-scale" (``at_book_scale``) and kind one of ``KINDS``; "key" is ``$TOYSUP_KEY``, the chapter key ``toysup.book.reproduce``
executes under (null for a run by hand), which it compares before reusing the records.
"""
import json
import numbers
import os
import platform
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toysup import paths, storage

STATUSES = ("pass", "fail", "deviation", "book-scale")
KINDS = ("evidence", "regression", "consistency")


def records_dir() -> Path:
    """Where chapters write their records: $TOYSUP_RECORDS (an absolute path: a kernel's working
    directory is the notebook's folder), else <repository>/outputs/records."""
    env = os.environ.get("TOYSUP_RECORDS")
    if env and not Path(env).is_absolute():
        raise ValueError(f"TOYSUP_RECORDS must be an absolute path, got {env!r}")
    return Path(env) if env else paths.RECORDS


def machine(device: str) -> str:
    """One line naming the hardware a chapter ran on: CPU model and cores, or the CUDA device."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(torch.device(device))}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu}, {os.cpu_count()} cores"


def _show(value: Any) -> str:
    """Measured and expected values as text: floats to 4 significant digits, strings unchanged."""
    if isinstance(value, (str, bool, np.bool_)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _texts(*values: float) -> list[str]:
    """Values as text, all at full precision where 4 digits would make two different ones equal."""
    shown = [_show(v) for v in values]
    floats = [float(v) for v in values]
    if any(shown[i] == shown[j] and floats[i] != floats[j]
           for i in range(len(values)) for j in range(i + 1, len(values))):
        return [repr(f) for f in floats]
    return shown


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Scorecard:
    """The checks of one chapter execution: printed, recorded to disk and asserted.

    chapter: the notebook's file stem ("01_toy_model"); sizes: the dict from ``chapter.resolve``
    (its "mode" entry is "fast", "book" or "paper"); seed, device: the chapter's parameters.
    """

    def __init__(self, chapter: str, sizes: Mapping[str, Any], *, seed: int, device: str = "cpu",
                 directory: Path | None = None) -> None:
        if not chapter or "/" in chapter:
            raise ValueError(f"chapter must be a notebook's file stem like '01_toy_model', got {chapter!r}")
        if sizes.get("mode") not in ("fast", "book", "paper"):
            raise ValueError(f"sizes must come from chapter.resolve (mode fast/book/paper), got "
                             f"mode {sizes.get('mode')!r}")
        self.path = (directory or records_dir()) / f"{chapter}.json"
        self.record: dict[str, Any] = {
            "chapter": chapter, "key": os.environ.get("TOYSUP_KEY"), "mode": sizes["mode"],
            "sizes": _jsonable({k: v for k, v in sizes.items() if k != "mode"}),
            "seed": _jsonable(seed), "device": str(device), "machine": machine(str(device)),
            "torch": torch.__version__,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "checks": [],
        }
        self._write()

    @property
    def checks(self) -> list[dict[str, str]]:
        """The records so far, in order."""
        return self.record["checks"]

    def _write(self) -> None:
        """Publish the record under its lock, which also removes the temporaries of a killed writer."""
        with storage.locked(self.path):
            storage.write_text(self.path, json.dumps(self.record, indent=1, ensure_ascii=False))

    def _add(self, claim: str, statement: str, measured: Any, expected: Any, tolerance: str,
             status: str, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        entry = {"claim": claim, "statement": statement, "kind": kind, "measured": _show(measured),
                 "expected": _show(expected), "tolerance": tolerance, "status": status}
        self.record["checks"].append(entry)
        self._write()
        label = {"pass": "PASS", "fail": "FAIL", "deviation": "NOT REPRODUCED", "book-scale": "BOOK SCALE"}[status]
        tol = f" ({tolerance})" if tolerance else ""
        print(f"{label:5s} [{kind}] {claim} {statement}: measured {entry['measured']}, "
              f"expected {entry['expected']}{tol}")

    def assert_that(self, claim: str, statement: str, measured: Any, expected: Any, passed: bool, *,
                    kind: str, tolerance: str = "") -> None:
        """Record a check whose condition the caller computed; raise AssertionError if not passed.

        claim: the spec's id ("R3b", "§2.4"); statement: the claim in one line; measured, expected:
        numbers or text; kind: one of ``KINDS``; tolerance: how far from ``expected`` still passes, in
        words ("10 %"). With ``$TOYSUP_RECORD_ONLY=1`` (the mutation run, toysup/book/mutants.py) a
        failed check is recorded and printed but does not raise, so every check of the chapter runs.
        """
        ok = bool(passed)
        self._add(claim, statement, measured, expected, tolerance, "pass" if ok else "fail", kind)
        if not ok and os.environ.get("TOYSUP_RECORD_ONLY") != "1":
            raise AssertionError(f"{claim} {statement}: measured {_show(measured)}, expected "
                                 f"{_show(expected)}{' (' + tolerance + ')' if tolerance else ''}")

    def assert_between(self, claim: str, statement: str, measured: float, low: float, high: float, *,
                       kind: str) -> None:
        """Pass if low <= measured <= high."""
        shown, low_text, high_text = _texts(measured, low, high)
        self.assert_that(claim, statement, shown, f"in [{low_text}, {high_text}]", low <= measured <= high,
                         kind=kind)

    def assert_at_most(self, claim: str, statement: str, measured: float, bound: float, *, kind: str,
                       strict: bool = False) -> None:
        """Pass if measured <= bound (< with ``strict``)."""
        shown, bound_text = _texts(measured, bound)
        self.assert_that(claim, statement, shown, f"{'<' if strict else '<='} {bound_text}",
                         measured < bound if strict else measured <= bound, kind=kind)

    def assert_at_least(self, claim: str, statement: str, measured: float, bound: float, *, kind: str,
                        strict: bool = False) -> None:
        """Pass if measured >= bound (> with ``strict``)."""
        shown, bound_text = _texts(measured, bound)
        self.assert_that(claim, statement, shown, f"{'>' if strict else '>='} {bound_text}",
                         measured > bound if strict else measured >= bound, kind=kind)

    def assert_close(self, claim: str, statement: str, measured: float, target: float, *,
                     rel: float, kind: str) -> None:
        """Pass if |measured / target - 1| <= rel (target must be non-zero)."""
        if target == 0:
            raise ValueError("target must be non-zero for a relative tolerance; use at_most on |x|")
        dev = measured / target - 1
        self.assert_that(claim, statement, f"{measured:.6g} ({dev:+.2e} relative)", f"{target:.6g}",
                         abs(dev) <= rel, kind=kind, tolerance=f"within {rel:.3g} relative")

    def deviation(self, claim: str, statement: str, measured: Any, expected: Any, reason: str, *,
                  kind: str) -> None:
        """Record a known non-reproduction (shown as such on the scorecard, asserts nothing).

        reason: one line on why, pointing to the chapter's explanation; kind: what the check would be
        if it were asserted (one of ``KINDS``).
        """
        self._add(claim, statement, measured, expected, reason, "deviation", kind)

    def known_deviation(self, claim: str, statement: str, measured: Any, expected: Any, passed: bool, *,
                        reason: str, kind: str) -> bool:
        """A claim that the chapter shows does not always reproduce at its sizes: recorded as "pass"
        when ``passed``, else as a deviation with ``reason``; asserts nothing. Returns ``passed``.
        Pair it with an enforced check of what does hold (a trend, a weaker bound)."""
        ok = bool(passed)
        if ok:
            self._add(claim, statement, measured, expected, "", "pass", kind)
        else:
            self.deviation(claim, statement, measured, expected, reason, kind=kind)
        return ok

    def at_book_scale(self, claim: str, statement: str, expected: Any, *, needs: str, kind: str) -> None:
        """Record a check that needs sizes this run does not reach, as "checked at book scale"
        (status "book-scale"; asserts nothing), instead of restating it on the sizes run.

        needs: what it needs, in words ("n = 2048; the largest n run here is 512"). Fast mode only: a
        book or paper run that does not reach a size its claim needs must say so as a deviation.
        """
        if self.record["mode"] != "fast":
            raise ValueError(f"at_book_scale is for fast mode, this run is {self.record['mode']!r}: "
                             f"check {claim} ({statement}) or record a deviation")
        self._add(claim, statement, "not run in fast mode", expected, needs, "book-scale", kind)

    def summary(self) -> str:
        """One line: how many checks passed (and of them how many are evidence), and the deviations."""
        counts = {s: sum(c["status"] == s for c in self.checks) for s in STATUSES}
        evidence = sum(c["status"] == "pass" and c["kind"] == "evidence" for c in self.checks)
        return (f"{self.record['chapter']} ({self.record['mode']}): {counts['pass']} checks pass "
                f"({evidence} of them evidence), {counts['fail']} fail, {counts['deviation']} known "
                f"deviations, {counts['book-scale']} checked at book scale only; recorded in "
                f"{paths.shown(self.path)}")
