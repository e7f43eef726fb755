"""The ``{scorecard}`` directive: the table of every check of every chapter, from the records that
the chapters' last executions wrote (toysup/book/scorecard.py); and ``{execution-times}``: each chapter's
wall time from the ``state.json`` that ``toysup.book.reproduce`` keeps (Sphinx setting ``scorecard_state``).
Nothing on either page is typed by hand.

The records directory is the Sphinx setting ``scorecard_records`` (``toysup.book.reproduce`` sets it to the
records of the executions it builds from); left empty it is ``outputs/records`` beside the book's
sources, where chapters executed without ``$TOYSUP_RECORDS`` (by jupyter-book itself) write theirs.
The table is filled in when pages are written, after every notebook has been read (and, when the
book executes notebooks itself, executed), and the page is rebuilt on every build.
Every chapter in the table of contents gets a row, executed or not.
"""
import html
import json
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

STATUS = {"pass": ("✔ pass", "#1a7f37"), "fail": ("✘ FAIL", "#cf222e"),
          "deviation": ("● not reproduced", "#9a6700"), "missing": ("not executed", "#6e7781"),
          "book-scale": ("◌ checked at book scale", "#6e7781"),
          "incomplete": ("✘ stopped before its checks", "#cf222e")}


SMALL = "font-size:0.85em"
KINDS = ("evidence", "regression", "consistency")   # toysup.book.scorecard.KINDS (the book does not import toysup)
KIND_HELP = {"evidence": "would fail if the code or the paper's claim were wrong",
             "regression": "agrees with reference values computed from the same reconstructed equations",
             "consistency": "holds by construction: a sanity check of the code, not evidence"}


def _kind(check: dict) -> str:
    return check.get("kind", "unlabelled")


def without_evidence(checks: list[dict]) -> list[str]:
    """Claims (in order of first appearance) with no asserted evidence check: every check of theirs is
    regression or consistency, or the evidence is only recorded as a known deviation or deferred to
    book scale."""
    claims = dict.fromkeys(c["claim"] for c in checks)
    return [claim for claim in claims
            if not any(c["claim"] == claim and _kind(c) == "evidence" and c["status"] in ("pass", "fail")
                       for c in checks)]


class scorecard_placeholder(nodes.General, nodes.Element):
    """Replaced by the table once every chapter is known."""


class timings_placeholder(nodes.General, nodes.Element):
    """Replaced by the table of chapter wall times."""


class ScorecardDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        return [scorecard_placeholder()]


class TimingsDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        return [timings_placeholder()]


def _records_dir(app: Sphinx) -> Path:
    configured = app.config.scorecard_records
    return Path(configured) if configured else Path(app.srcdir) / "outputs" / "records"


def _chapters(app: Sphinx) -> list[str]:
    """Chapter notebooks by file name, which is their table-of-contents order (01_..., 14_...)."""
    return sorted(d for d in app.env.found_docs if d.startswith("notebooks/"))


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _badge(status: str) -> str:
    text, colour = STATUS[status]
    return f'<span style="color:{colour};font-weight:bold;white-space:nowrap">{text}</span>'


def _when(record: dict) -> str:
    """The start of an execution as 'YYYY-MM-DD HH:MM' (UTC)."""
    return html.escape(record["started"][:16].replace("T", " "))


def _sizes(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


def _table(app: Sphinx, fromdoc: str) -> str:
    e = html.escape
    records = {doc: _load(_records_dir(app) / f"{Path(doc).name}.json") for doc in _chapters(app)}
    summary, detail = [], []
    totals = {"pass": 0, "fail": 0, "deviation": 0, "book-scale": 0}
    kind_totals = dict.fromkeys(KINDS, 0)
    evidence_pass = 0
    for doc, rec in records.items():
        title = app.env.titles[doc].astext() if doc in app.env.titles else doc
        uri = app.builder.get_relative_uri(fromdoc, doc)
        link = f'<a href="{e(uri)}">{e(title)}</a>'
        if rec is None:
            summary.append(f"<tr><td>{link}</td><td colspan='11'>{_badge('missing')}</td></tr>")
            continue
        counts = {s: sum(c["status"] == s for c in rec["checks"]) for s in totals}
        kinds = {k: sum(_kind(c) == k for c in rec["checks"]) for k in KINDS}
        for s in totals:
            totals[s] += counts[s]
        for k in KINDS:
            kind_totals[k] += kinds[k]
        evidence_pass += sum(_kind(c) == "evidence" and c["status"] == "pass" for c in rec["checks"])
        none = without_evidence(rec["checks"])
        worst = "fail" if counts["fail"] else ("pass" if rec["checks"] else "incomplete")
        summary.append(
            f"<tr><td>{link}</td><td>{_badge(worst)}</td><td>{counts['pass']}</td><td>{counts['fail']}</td>"
            f"<td>{counts['deviation']}</td><td>{counts['book-scale']}</td>" + "".join(f"<td>{kinds[k]}</td>" for k in KINDS)
            + f"<td>{e(', '.join(none)) or '—'}</td><td>{e(rec['mode'])}</td><td>{_when(rec)}</td></tr>")
        rows = "".join(
            f"<tr><td><a href='{e(uri)}#check'>{e(c['claim'])}</a></td><td>{e(_kind(c))}</td><td>{e(c['statement'])}</td>"
            f"<td>{e(c['expected'])}</td><td>{e(c['measured'])}</td><td>{e(c['tolerance'])}</td>"
            f"<td>{e(rec['mode'])}</td><td>{_badge(c['status'])}</td></tr>" for c in rec["checks"])
        detail.append(
            f"<h3>{link}</h3><p>mode <b>{e(rec['mode'])}</b>, seed {rec['seed']}, executed "
            f"{_when(rec)} UTC on {e(rec['machine'])}, device {e(rec['device'])}, torch "
            f"{e(rec['torch'])}.<br><small>sizes: {e(_sizes(rec['sizes']))}</small>"
            + (f"<br>Claims with no evidence check in this run: <b>{e(', '.join(none))}</b> (their checks "
               "are regression or consistency only, or their evidence is a known deviation or checked at book scale "
               "only)." if none else "")
            + "</p>"
            f"<table class='table' style='{SMALL}'><thead><tr><th>claim</th><th>kind</th><th>statement</th>"
            "<th>expected</th><th>measured</th><th>tolerance / note</th><th>mode</th><th>status</th>"
            f"</tr></thead><tbody>{rows}"
            "</tbody></table>")
    missing = sum(r is None for r in records.values())
    head = (f"<p><b>{totals['pass']}</b> checks pass, of which <b>{evidence_pass}</b> are evidence; "
            f"<b>{totals['fail']}</b> fail, <b>{totals['deviation']}</b> known deviations recorded, "
            f"<b>{totals['book-scale']}</b> checked at book scale only (not run at these sizes), "
            f"{missing} of {len(records)} chapters without records. By kind (all statuses): "
            + ", ".join(f"<b>{kind_totals[k]}</b> {k}" for k in KINDS) + ".</p><ul>"
            + "".join(f"<li><b>{k}</b>: {e(KIND_HELP[k])}</li>" for k in KINDS) + "</ul>")
    table = (f"<table class='table' style='{SMALL}'><thead><tr><th>chapter</th><th>status</th><th>pass</th><th>fail</th>"
             "<th>not reproduced</th><th>at book scale</th>" + "".join(f"<th>{k}</th>" for k in KINDS)
             + "<th>claims without evidence</th><th>mode</th><th>executed (UTC)</th></tr></thead><tbody>"
             + "".join(summary) + "</tbody></table>")
    return f"<div class='toysup-scorecard'>{head}{table}{''.join(detail)}</div>"


def _timings(app: Sphinx, fromdoc: str) -> str:
    e = html.escape
    state = _load(Path(app.config.scorecard_state)) if app.config.scorecard_state else None
    if not state:
        return ("<p>No wall times recorded for this build: its chapters were not executed by "
                "<code>python -m toysup.book.reproduce</code> (the test suite executes them itself).</p>")
    rows, total = [], 0.0
    for doc in _chapters(app):
        row = state.get(Path(doc).name)
        title = app.env.titles[doc].astext() if doc in app.env.titles else doc
        link = f'<a href="{e(app.builder.get_relative_uri(fromdoc, doc))}">{e(title)}</a>'
        if row is None:
            rows.append(f"<tr><td>{link}</td><td colspan='3'>not executed</td></tr>")
            continue
        total += row["seconds"]
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "defaults (book scale)"
        rows.append(f"<tr><td>{link}</td><td style='text-align:right'>{row['seconds']:.0f}</td>"
                    f"<td>{_badge(row['status'])}</td><td><small>{e(params)}</small></td></tr>")
    return ("<table class='table'><thead><tr><th>chapter</th><th>wall time (s)</th><th>outcome</th>"
            "<th>parameters</th></tr></thead><tbody>" + "".join(rows)
            + f"<tr><td><b>total</b></td><td style='text-align:right'><b>{total:.0f}</b></td>"
            "<td colspan='2'></td></tr></tbody></table>")


def _fill(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for node in doctree.findall(scorecard_placeholder):
        node.replace_self(nodes.raw("", _table(app, docname), format="html"))
    for node in doctree.findall(timings_placeholder):
        node.replace_self(nodes.raw("", _timings(app, docname), format="html"))


def _always_outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    return [doc for doc in env.found_docs if doc.endswith(("scorecard", "execution"))]


def setup(app: Sphinx) -> dict:
    app.add_config_value("scorecard_records", "", "env")
    app.add_config_value("scorecard_state", "", "env")
    app.add_node(scorecard_placeholder)
    app.add_node(timings_placeholder)
    app.add_directive("scorecard", ScorecardDirective)
    app.add_directive("execution-times", TimingsDirective)
    app.connect("doctree-resolved", _fill)
    app.connect("env-get-outdated", _always_outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
