"""Where the project reads and writes: the repository root and its two git-ignored output folders;
what every reuse key (chapters, model cache) includes besides its own inputs: the digest of the
package's source and the versions of the interpreter and libraries; and how paths are printed.

``outputs/`` holds what chapters compute for reuse (the model cache, exported networks) and the
scorecard records of chapters run by hand (``outputs/records/``); ``_build/`` holds the executions,
records and state of ``toysup.book.reproduce`` and the rendered book, and (``_build/tool-state/``)
what matplotlib and IPython would otherwise write under ``$HOME``. Nothing is written anywhere else.
"""
import hashlib
import importlib.metadata
import os
import platform
from collections.abc import Sequence
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
OUTPUTS = REPO_ROOT / "outputs"
BUILD = REPO_ROOT / "_build"
RECORDS = OUTPUTS / "records"      # scorecard records of a run outside reproduce (no $TOYSUP_RECORDS)
REQUIREMENTS = REPO_ROOT / "requirements.txt"
RESULT_PACKAGES = ("numpy", "scipy", "pandas", "matplotlib", "torch")   # whose versions change results
TOOL_STATE = BUILD / "tool-state"


def tool_environment() -> dict[str, str]:
    """Environment variables that keep a kernel's writes inside the repository: without them it
    writes ~/.cache/matplotlib (font cache), ~/.config/matplotlib and ~/.ipython (profile). A variable
    the user has set is left out (theirs wins). Creates TOOL_STATE (IPython needs the parent of its
    folder to exist, or it falls back to a temporary folder)."""
    TOOL_STATE.mkdir(parents=True, exist_ok=True)
    wanted = {"MPLCONFIGDIR": TOOL_STATE / "matplotlib", "IPYTHONDIR": TOOL_STATE / "ipython"}
    return {name: str(path) for name, path in wanted.items() if name not in os.environ}


def source_digest(package_dir: Path = PACKAGE_DIR, parts: Sequence[str] | None = None) -> str:
    """SHA-256 over the relative paths and contents of the package's ``*.py`` files, in path order.

    parts: the files and folders (relative to ``package_dir``, folders with their subfolders) to
    cover, e.g. ("persian_rug", "checks.py"); None: the whole package.
    """
    roots = [package_dir] if parts is None else [package_dir / part for part in parts]
    missing = [str(root) for root in roots if not root.exists()]
    if missing:
        raise ValueError(f"parts must name files or folders of {package_dir}, got missing {missing}")
    files = sorted({path for root in roots
                    for path in ([root] if root.is_file() else root.rglob("*.py"))})
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def versions(packages: Sequence[str] = RESULT_PACKAGES) -> dict[str, str]:
    """The Python version ("python") and the installed version of each named distribution."""
    return {"python": platform.python_version(),
            **{name: importlib.metadata.version(name) for name in packages}}


def shown(path: Path | str) -> str:
    """A path as printed: relative to the repository when inside it (so pages and logs read the same
    on every machine), else absolute."""
    resolved = Path(path).resolve()
    return resolved.relative_to(REPO_ROOT).as_posix() if resolved.is_relative_to(REPO_ROOT) else str(resolved)
