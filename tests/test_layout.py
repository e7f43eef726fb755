"""The package's architecture, enforced: one subpackage per paper that never imports the other, the
book machinery and the shared modules importing neither, and thin chapters (no code cell over 25
non-blank lines, sizes read by name)."""
import ast
import json

import papermill
import pytest

from toysup import paths
from toysup.book import reproduce

PAPERS = ("toysup.persian_rug", "toysup.cis")


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("module", sorted(p.relative_to(paths.PACKAGE_DIR).as_posix()
                                          for p in paths.PACKAGE_DIR.rglob("*.py")))
def test_no_module_imports_the_other_paper(module):
    path = paths.PACKAGE_DIR / module
    home = next((p for p in PAPERS if module.startswith(p.split(".")[1] + "/")), None)
    forbidden = [p for p in PAPERS if p != home]
    bad = [name for name in imported_modules(path) for p in forbidden if name.startswith(p)]
    assert not bad, f"toysup/{module} imports {bad}"


@pytest.mark.parametrize("notebook", reproduce.chapters(), ids=lambda p: p.stem)
def test_chapters_are_thin(notebook):
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    for cell in cells:
        source = "".join(cell["source"])
        lines = [line for line in source.splitlines() if line.strip()]
        assert len(lines) <= 25, f"{notebook.stem}: a code cell of {len(lines)} lines ({lines[0]!r})"
        assert 'sizes["' not in source, f"{notebook.stem}: read sizes by name, not sizes[...]"


@pytest.mark.parametrize("notebook", reproduce.chapters(), ids=lambda p: p.stem)
def test_papermill_parses_every_parameter(notebook):
    # papermill drops a parameter whose comment it cannot parse (e.g. one holding "="), and says so
    # only in a log line: `papermill --help-notebook` then omits it.

    assert sorted(papermill.inspect_notebook(str(notebook))) == sorted(reproduce.chapter_parameters(notebook))


@pytest.mark.parametrize("notebook", reproduce.chapters(), ids=lambda p: p.stem)
def test_chapters_use_every_import_and_shadow_none(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    tree = ast.parse("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
    imported = {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assert not imported - loaded, f"{notebook.stem}: unused imports {sorted(imported - loaded)}"
    assert not imported & stored, f"{notebook.stem}: names that shadow a module {sorted(imported & stored)}"
