"""Serve MathJax from the build output instead of a CDN, so the book renders math offline.

MathJax 3.2.2 comes from the pinned PyPI package ``django-static-mathjax`` (installed by
requirements.txt); nothing third-party is committed. The self-contained ``tex-svg.js`` and its
LICENSE are copied into ``_build/html/_static/mathjax/`` when the HTML build finishes.
"""
import shutil
from pathlib import Path

import mathjax
from sphinx.application import Sphinx

SOURCE = Path(mathjax.__file__).parent / "static" / "mathjax"
TARGET = "mathjax"


def _set_path(app: Sphinx, config) -> None:
    config.mathjax_path = f"{TARGET}/tex-svg.js"


def _copy(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / TARGET
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SOURCE / "es5" / "tex-svg.js", target / "tex-svg.js")
    shutil.copy2(SOURCE / "LICENSE", target / "LICENSE")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _set_path)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
