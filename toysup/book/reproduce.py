"""Run every chapter through papermill and build the book from those executions, in one command.

    python -m toysup.book.reproduce                          # every chapter at book scale, then the book
    python -m toysup.book.reproduce --params my.yaml         # e.g. device: cuda, scale: paper, larger sizes
    python -m toysup.book.reproduce --only 02_symmetry 04_activations --force
    python -m toysup.book.reproduce --jobs 2                 # two chapters at once, one thread each

Layout of one build folder B (default ``_build``; ``--fast`` defaults to ``_build/fast``):
``B/notebooks/`` the executed chapters, ``B/records/`` their scorecard records (toysup/book/scorecard.py),
``B/state.json`` what ran, with its key, time and outcome, ``B/stage/`` the book's sources with the
executed chapters in place and execution switched off, ``B/html/`` the rendered book, ``B/helpers/``
what the training helpers ran. One run holds the folder's lock (``B/.state.json.lock``) throughout: a
second run on the same folder waits.

With ``--jobs`` > 1 a chapter with a cell tagged ``shared-training`` starts first, together with its
training helper: a second kernel that runs the chapter up to that cell with the same parameters, so
that the two split the chapter's models through the model cache (``persian_rug.cache.cached_fits``: each takes
the fits no other process holds, largest first; the helper stops when only the chapter's are left).
The models do not depend on which process trained them; the helper's page is not part of the book.

A chapter's key is the SHA-256 of the notebook file, its parameters, every toysup source file, the
versions of Python, numpy, scipy, pandas, matplotlib and torch, and requirements.txt. The executed
notebook (metadata ``toysup.key``) and its records ("key") carry the key they were made under, and
the state entry is removed before a chapter runs and written only when papermill has finished it. A
chapter is reused only when all three hold its current key and its last run passed, so any change,
an interrupted run, and a notebook or record written into the folder under another key (by the tests
after a change; a run by hand records none) are rerun; ``--force`` reruns it anyway. A failed check stops the run with the chapter's name (``--keep-going``: run the rest, build
the book, which then shows the failure red on its scorecard, and still exit non-zero). Paths are
printed relative to the repository.

Parameter file (YAML): ``all:`` applies to every chapter, a chapter's file stem to that chapter only::

    all: {device: cuda, scale: paper}
    02_symmetry: {trend_sizes: [256, 512, 1024, 2048, 4096, 8192]}

Every value is checked before any chapter runs, by the chapter's own schema (``toysup.book.chapter``):
the parameters cell, the file's values and the cell after it (which declares the schema and does
nothing else) are run here, so a bad value fails at once with the message the notebook would give,
every bad value of the file in one ValueError. ``--parameter-tables`` prints every chapter's
parameter table in Markdown (the README's rerun section shows them).
"""
import argparse
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml
from traitlets.config import Config

from toysup import storage
from toysup.book import chapter
from toysup.paths import BUILD, REPO_ROOT, REQUIREMENTS, shown, source_digest, tool_environment, versions

NOTEBOOKS = REPO_ROOT / "notebooks"
# The kernel manager provisions CurveZMQ keys for kernels whose kernelspec declares support (ipykernel's
# does): the kernel's traffic is encrypted, so ipykernel does not warn "Kernel is running over TCP
# without encryption" at every chapter.
KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}})
HEARTBEAT = 60.0   # seconds between the lines that say which chapters are running (``--jobs`` > 1)
SHARED_TRAINING = "shared-training"   # cell tag: a helper kernel shares the training up to this cell


def chapters() -> list[Path]:
    """Every chapter notebook, in book order."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def chapter_parameters(notebook: Path) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    return list(chapter.parameters_cell(notebook))


def declared(notebook: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The namespace of the chapter after its parameters cell, ``params`` (as papermill injects
    them) and the cell after it, run in the notebook's folder as papermill runs it: ``sizes`` in it
    holds the chapter's schema, every parameter its checked value. A bad value is the chapter's
    ValueError, which names the parameter, the value and the allowed range."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    first = next((i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", [])), None)
    if first is None or first + 1 >= len(cells):
        raise ValueError(f"{notebook.name} needs a cell tagged 'parameters' and the schema cell after it")
    namespace: dict[str, Any] = {}
    with contextlib.chdir(notebook.parent):
        exec("".join(cells[first]["source"]), namespace)
        namespace.update(params)
        exec("".join(cells[first + 1]["source"]), namespace)
    if not isinstance(namespace.get("sizes"), chapter.Sizes):
        raise ValueError(f"{notebook.name}: the cell after its parameters cell must set "
                         "sizes = chapter.resolve(globals(), ...)")
    return namespace


def chapter_params(notebook: Path, spec: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The parameters of one chapter from a parameter file's ``all`` and ``<stem>`` sections, each
    checked and read as the chapter reads it (``declared``: "false" is False, "2e6" is 2000000).
    One ValueError lists every unknown name and every bad value."""
    params = {**spec.get("all", {}), **spec.get(notebook.stem, {})}
    names = chapter_parameters(notebook)
    unknown = set(params) - set(names)
    if unknown:
        raise ValueError(f"{notebook.stem} has no parameter(s) {sorted(unknown)}; it has {names}")
    try:
        namespace = declared(notebook, params)
    except ValueError:
        problems = []
        for name, value in params.items():          # each value alone, so that every bad one is named
            try:
                declared(notebook, {name: value})
            except ValueError as err:
                problems.append(str(err))
        if not problems:                             # only the combination fails: say so
            try:
                declared(notebook, params)
            except ValueError as err:
                problems.append(str(err))
        raise ValueError(f"{notebook.stem}: " + "; ".join(problems)) from None
    return {name: namespace[name] for name in params}


def parameter_tables() -> str:
    """The parameter tables (``chapter.markdown_table``) in Markdown: the parameters common to every
    chapter, then under a heading per chapter those it declares itself (or declares differently)."""
    tables = [f"#### Every chapter\n\n{chapter.markdown_table(chapter.COMMON)}"]
    for nb in chapters():
        schema = declared(nb, {})["sizes"].schema
        own = {name: param for name, param in schema.items() if chapter.COMMON.get(name) != param}
        tables.append(f"#### {nb.stem}\n\n{chapter.markdown_table(own)}")
    return "\n\n".join(tables)


def load_spec(path: Path | None, *, fast: bool) -> dict[str, dict[str, Any]]:
    """A parameter file as {section: {name: value}}; ``fast`` adds fast=True for every chapter."""
    try:
        spec = yaml.safe_load(path.read_text()) if path else {}
    except OSError as err:
        raise ValueError(f"--params: cannot read the parameter file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"--params: {path} is not valid YAML: {err}") from None
    spec = spec or {}
    if not isinstance(spec, dict) or not all(isinstance(v, dict) for v in spec.values()):
        raise ValueError(f"parameter file {path} must map 'all' or chapter names to parameter mappings")
    known = {"all"} | {nb.stem for nb in chapters()}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"parameter file {path}: unknown section(s) {sorted(unknown)}; "
                         f"allowed: {sorted(known)}")
    if fast:
        spec["all"] = {**spec.get("all", {}), "fast": True}
    return spec


def chapter_key(notebook: Path, params: dict[str, Any]) -> str:
    """SHA-256 of everything an execution depends on: notebook, parameters, toysup, the versions
    of Python and the libraries whose results it shows (``paths.versions``), requirements.txt."""
    digest = hashlib.sha256(notebook.read_bytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(source_digest().encode())
    digest.update(json.dumps(versions(), sort_keys=True).encode())
    digest.update(REQUIREMENTS.read_bytes())
    return digest.hexdigest()


def made_under(path: Path, *where: str) -> str | None:
    """The key stored under the nested names ``where`` of the JSON file ``path``: ("metadata",
    "toysup", "key") of an executed notebook, ("key",) of a record. None if absent or unreadable."""
    try:
        value = json.loads(path.read_text())
        for name in where:
            value = value[name]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


@contextlib.contextmanager
def kernel_environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` and ``paths.tool_environment()`` in this process's environment for the block (the
    kernel started in it inherits them), then the environment as it was: a worker process runs
    several chapters and helpers in turn."""
    values = {**values, **tool_environment()}
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def execute_chapter(notebook: Path, out_dir: Path, params: dict[str, Any], records: Path, *,
                    progress: bool = True) -> str:
    """Execute one chapter with papermill into ``out_dir``, its scorecard records into ``records``.

    The executed notebook is written once papermill has finished (the previous one stays until then)
    and then carries its ``chapter_key`` in its metadata (``toysup.key``), as its records do ("key").
    Returns the key (computed as the run starts). Raises papermill.PapermillExecutionError when a
    cell fails (a failed check included); the executed notebook, with the error and the key, is
    written all the same.
    """
    key = chapter_key(notebook, params)
    target = out_dir / notebook.name
    out_dir.mkdir(parents=True, exist_ok=True)
    failure = None
    try:
        with kernel_environment({"TOYSUP_RECORDS": str(records), "TOYSUP_KEY": key}):
            papermill.execute_notebook(notebook, target, parameters=params, kernel_name="python3",
                                       cwd=notebook.parent, progress_bar=progress,
                                       request_save_on_cell_execute=False, config=KERNEL_CONFIG)
    except papermill.PapermillExecutionError as err:
        failure = err
    executed = nbformat.read(target, as_version=nbformat.NO_CONVERT)
    executed.metadata["toysup"] = {"key": key}
    storage.write_text(target, nbformat.writes(executed))
    if failure:
        raise failure
    return key


def load_state(path: Path) -> dict[str, dict[str, Any]]:
    """A build folder's ``state.json`` as {chapter: entry}; {} when there is none yet. An unreadable
    one is treated as empty, with a printed note: its chapters rerun."""
    if not path.exists():
        return {}
    try:
        state, problem = json.loads(path.read_text()), "not a mapping of chapters to entries"
    except (OSError, ValueError) as err:
        state, problem = None, str(err)
    if isinstance(state, dict) and all(isinstance(entry, dict) for entry in state.values()):
        return state
    print(f"note: {shown(path)} is unreadable ({problem}); starting from an empty state, so every "
          "chapter reruns", flush=True)
    return {}


def stage_book(executed: Path, records: Path, stage: Path, state: Path | None = None) -> Path:
    """A copy of the book's sources whose chapters are the executions in ``executed``, with
    notebook execution off, the scorecard reading ``records`` and the execution page ``state``
    (a ``state.json`` of ``reproduce``; None: no wall times)."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "_toc.yml", stage / "_toc.yml")
    shutil.copytree(REPO_ROOT / "book", stage / "book")
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    config["sphinx"]["config"]["scorecard_records"] = str(records.resolve())
    config["sphinx"]["config"]["scorecard_state"] = str(state.resolve()) if state else ""
    (stage / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
    (stage / "notebooks").mkdir()
    for notebook in chapters():
        done = executed / notebook.name
        if not done.exists():
            raise FileNotFoundError(f"{notebook.stem} has no execution in {executed}")
        shutil.copy2(done, stage / "notebooks" / notebook.name)
    return stage


def build_book(stage: Path, html: Path) -> subprocess.CompletedProcess:
    """``jupyter-book build -W -n --keep-going`` of a staged book; the pages end up in ``html``."""
    jb = Path(sys.executable).parent / "jupyter-book"
    build = subprocess.run([str(jb), "build", str(stage), "-W", "-n", "--keep-going"],
                           capture_output=True, text=True, cwd=stage)
    if build.returncode == 0:
        if html.exists():
            shutil.rmtree(html)
        (stage / "_build" / "html").rename(html)
    return build


def reproduce(out: Path, spec: dict[str, dict[str, Any]], *, only: list[str] | None = None,
              force: bool = False, keep_going: bool = False, build: bool = True, jobs: int = 1) -> int:
    """Execute the chapters (skipping unchanged ones), then build the book. Returns an exit code.

    Every parameter is checked before anything runs; the run then holds the build folder's lock.
    jobs: chapters executed at once, each in a worker process whose kernel gets cpu_count // jobs
    threads (1: one after the other, with the threads torch chooses).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= (os.cpu_count() or 1):
        raise ValueError(f"jobs must be an integer in [1, {os.cpu_count() or 1}] (the CPU count), got {jobs!r}")
    selected = [nb for nb in chapters() if not only or nb.stem in only]
    if only and len(selected) != len(set(only)):
        known = [nb.stem for nb in chapters()]
        raise ValueError(f"--only names unknown chapter(s) {sorted(set(only) - set(known))}; known: {known}")
    plan, problems = {}, []
    for nb in selected:                  # every chapter checked, every problem named, before any runs
        try:
            plan[nb] = chapter_params(nb, spec)
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise ValueError("bad parameters, nothing was run:\n  " + "\n  ".join(problems))
    state_file = out / "state.json"
    with storage.locked(state_file, waiting=f"waiting for the other run on {shown(out)} to finish"):
        return _run(out, plan, load_state(state_file), force=force, keep_going=keep_going, build=build,
                    jobs=jobs)


def run_chapter(notebook: Path, executed: Path, params: dict[str, Any], records: Path, *,
                threads: int | None = None) -> tuple[str, str, float, str]:
    """``execute_chapter`` timed: (status "pass" or "fail", the error, seconds, the key it ran
    under: computed as it starts, so a change made while it waited is not hidden). threads: the
    kernel's thread count (OMP_NUM_THREADS, MKL_NUM_THREADS), set in this process's environment, so
    only for a worker process of its own (``_run`` with jobs > 1; no progress bar there); None:
    inherited, with papermill's progress bar."""
    if threads is not None:
        os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    tic, key = time.perf_counter(), chapter_key(notebook, params)
    try:
        key = execute_chapter(notebook, executed, params, records, progress=threads is None)
        status, error = "pass", ""
    except papermill.PapermillExecutionError as err:
        status, error = "fail", f"{err.ename}: {err.evalue}"
    return status, error, time.perf_counter() - tic, key


def training_prefix(notebook: Path) -> nbformat.NotebookNode | None:
    """The chapter up to its last cell tagged ``shared-training`` (None if it has none): what a
    training helper executes (``run_helper``)."""
    nb = nbformat.read(notebook, as_version=4)
    tagged = [i for i, cell in enumerate(nb.cells) if SHARED_TRAINING in cell.metadata.get("tags", [])]
    if not tagged:
        return None
    nb.cells = nb.cells[:tagged[-1] + 1]
    return nb


def run_helper(notebook: Path, helpers: Path, params: dict[str, Any], *,
               threads: int) -> tuple[str, str, float, str]:
    """Execute ``training_prefix(notebook)`` with the chapter's parameters in a kernel of its own
    (into ``helpers``, its records too), as a training helper (``storage.HELPER_ENV``): it trains the
    chapter's models that no other process holds and leaves the rest, so that the chapter and its
    helper split the training. Returns what ``run_chapter`` returns, the key ""; a failed helper
    costs time only (the chapter trains what the helper did not)."""
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    prefix = helpers / notebook.name
    helpers.mkdir(parents=True, exist_ok=True)
    storage.write_text(prefix, nbformat.writes(training_prefix(notebook)))
    tic = time.perf_counter()
    try:
        with kernel_environment({storage.HELPER_ENV: "1", "TOYSUP_RECORDS": str(helpers / "records"),
                                 "TOYSUP_KEY": "helper"}):
            papermill.execute_notebook(prefix, prefix, parameters=params, kernel_name="python3",
                                       cwd=notebook.parent, progress_bar=False,
                                       request_save_on_cell_execute=False, config=KERNEL_CONFIG)
        status, error = "pass", ""
    except papermill.PapermillExecutionError as err:
        status, error = "fail", f"{err.ename}: {err.evalue}"
    return status, error, time.perf_counter() - tic, ""


def _run(out: Path, plan: dict[Path, dict[str, Any]], state: dict[str, dict[str, Any]], *,
         force: bool, keep_going: bool, build: bool, jobs: int = 1) -> int:
    """``reproduce`` once its plan is checked and the folder locked."""
    state_file, executed, records = out / "state.json", out / "notebooks", out / "records"
    failed, start, todo, last_seconds = [], time.perf_counter(), [], {}
    for i, (notebook, params) in enumerate(plan.items(), 1):
        key = chapter_key(notebook, params)
        last = state.get(notebook.stem, {})
        cached = (not force and last.get("key") == key and last.get("status") == "pass"
                  and made_under(executed / notebook.name, "metadata", "toysup", "key") == key
                  and made_under(records / f"{notebook.stem}.json", "key") == key)
        print(f"[{i}/{len(plan)}] {notebook.stem} {json.dumps(params)}", flush=True)
        if cached:
            print(f"    unchanged since its run of {last['seconds']:.0f} s (key {key[:12]}): "
                  f"reusing {shown(executed / notebook.name)}; --force reruns it", flush=True)
            last["reused"] = True
            continue
        todo.append(notebook)
        last_seconds[notebook] = last.get("seconds", math.inf)
        state.pop(notebook.stem, None)                  # written back only once the run has finished,
    if todo:                                            # so an interrupted one is not reused
        storage.write_text(state_file, json.dumps(state, indent=1))

    def finished(notebook: Path, status: str, error: str, seconds: float, key: str) -> None:
        state[notebook.stem] = {"key": key, "seconds": seconds,
                                "status": status, "error": error, "params": plan[notebook],
                                "reused": False}
        storage.write_text(state_file, json.dumps(state, indent=1))
        print(f"    {notebook.stem}: {status} in {seconds:.1f} s{'  ' + error if error else ''}", flush=True)
        if status == "fail":
            failed.append(notebook.stem)

    if jobs == 1 or (len(todo) <= 1 and all(training_prefix(nb) is None for nb in todo)):
        for notebook in todo:
            print(f"running {notebook.stem}", flush=True)
            finished(notebook, *run_chapter(notebook, executed, plan[notebook], records))
            if failed and not keep_going:
                break
    else:
        # Chapters with a shared-training cell first, each followed by its training helper, then
        # the longest first (by its last run here; chapters never run here first), one thread each.
        todo.sort(key=lambda nb: -last_seconds[nb])
        helped = [nb for nb in todo if training_prefix(nb) is not None]
        jobs_list = [job for nb in helped for job in (("chapter", nb), ("helper", nb))] + \
            [("chapter", nb) for nb in todo if nb not in helped]
        threads = max(1, (os.cpu_count() or 1) // jobs)
        order = [f"{', '.join(nb.stem for nb in helped)} first, each with a training helper"] if helped else []
        if len(helped) < len(todo):
            order.append(f"the longest first: {', '.join(nb.stem for nb in todo if nb not in helped)}")
        print(f"running {len(todo)} chapter(s), {jobs} at a time with {threads} thread(s) each, "
              f"{'; then '.join(order)}", flush=True)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            running = {(pool.submit(run_chapter, nb, executed, plan[nb], records, threads=threads)
                        if kind == "chapter" else
                        pool.submit(run_helper, nb, out / "helpers", plan[nb], threads=threads)): (kind, nb)
                       for kind, nb in jobs_list}
            while running:
                done, _ = wait(running, timeout=HEARTBEAT, return_when=FIRST_COMPLETED)
                if not done:        # no progress bar per chapter here: a line a minute instead
                    busy = [nb.stem + (" (helper)" if kind == "helper" else "")   # started in order
                            for kind, nb in running.values()][:jobs]
                    print(f"    {time.perf_counter() - start:.0f} s: running {', '.join(busy)}; "
                          f"{len(running) - len(busy)} waiting", flush=True)
                for future in done:
                    kind, notebook = running.pop(future)
                    if kind == "chapter":
                        finished(notebook, *future.result())
                    else:
                        status, error, seconds, _ = future.result()
                        print(f"    {notebook.stem} (training helper): {status} in {seconds:.1f} s"
                              f"{'  ' + error if error else ''}", flush=True)
                if failed and not keep_going:       # the chapters not started are not started
                    for future in [f for f in running if f.cancel()]:
                        running.pop(future)
    total = time.perf_counter() - start
    print("\nchapter                          seconds  outcome")
    for notebook in plan:
        row = state.get(notebook.stem)
        if row:
            print(f"{notebook.stem:32s} {row['seconds']:7.1f}  "
                  f"{row['status']}{' (reused)' if row.get('reused') else ''}")
    print(f"total wall time of this run: {total:.1f} s")
    if failed and not keep_going:
        print(f"FAILED: chapter {failed[0]}: {state[failed[0]]['error']}", file=sys.stderr)
        return 1
    unexecuted = [nb.stem for nb in chapters() if nb.stem not in state or
                  made_under(executed / nb.name, "metadata", "toysup", "key") != state[nb.stem]["key"]]
    if build and unexecuted:
        print(f"book not built: {', '.join(unexecuted)} not yet executed in {shown(executed)} "
              "(run once without --only)", flush=True)
    elif build:
        tic = time.perf_counter()
        result = build_book(stage_book(executed, records, out / "stage", state_file), out / "html")
        if result.returncode != 0:
            print(result.stdout[-4000:], result.stderr[-4000:], sep="\n", file=sys.stderr)
            print("FAILED: the book build (jupyter-book -W -n)", file=sys.stderr)
            return 1
        print(f"book built in {time.perf_counter() - tic:.1f} s: {shown(out / 'html' / 'index.html')}")
    if failed:
        print(f"FAILED: chapter(s) {', '.join(failed)}; see the scorecard page", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toysup.book.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, help="YAML parameter file (see the module docstring)")
    parser.add_argument("--fast", action="store_true", help="CI sizes (fast=True in every chapter)")
    parser.add_argument("--only", nargs="+", metavar="CHAPTER", help="file stems of the chapters to run")
    parser.add_argument("--force", action="store_true", help="rerun chapters even if unchanged")
    parser.add_argument("--keep-going", action="store_true",
                        help="after a failed chapter run the rest and build the book anyway")
    parser.add_argument("--no-build", action="store_true", help="execute the chapters only")
    parser.add_argument("--jobs", type=int, default=1,
                        help="chapters executed at once, each kernel with cpu_count // jobs threads")
    parser.add_argument("--out", type=Path, help="build folder (default _build, or _build/fast)")
    parser.add_argument("--parameter-tables", action="store_true",
                        help="print every chapter's parameter table (Markdown) and exit")
    args = parser.parse_args(argv)
    if args.parameter_tables:
        print(parameter_tables())
        return 0
    out = args.out or BUILD / ("fast" if args.fast else "")
    try:
        spec = load_spec(args.params, fast=args.fast)
        return reproduce(out.resolve(), spec, only=args.only, force=args.force,
                         keep_going=args.keep_going, build=not args.no_build, jobs=args.jobs)
    except ValueError as err:        # a bad parameter, file or chapter name: nothing has run
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
