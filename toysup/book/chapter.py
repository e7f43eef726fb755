"""Chapter sizes: every notebook fills its parameters from one table with three modes.

``fast`` — CI sizes, each chapter well under a minute; ``book`` — what the rendered book shows (the
whole book in about 20 minutes on two CPU cores); ``paper`` — the specification's grids and sizes, for
a GPU or a long CPU run. A parameter the reader set explicitly (not None) always wins.

The parameters cell names each size once (``n_features = None``); the next cell gives its defaults::

    sizes = chapter.resolve(globals(), fast=fast, scale=scale,
                            n_features=(128, 512, 1024),   # (fast, book, paper)
                            n_active=3)                    # the same in every mode

after which ``n_features`` holds the mode's value and ``sizes`` is the table the scorecard records.
"""
from collections.abc import MutableMapping
from typing import Any

SCALES = ("book", "paper")
MODES = ("fast", "book", "paper")


def resolve(namespace: MutableMapping[str, Any], *, fast: bool, scale: str,
            **table: Any) -> dict[str, Any]:
    """Set every parameter of ``table`` that is None in ``namespace`` (a notebook's ``globals()``)
    to its default for the mode, and return {name: value} of the table plus "mode".

    mode = "fast" if fast else scale. A table value that is a tuple is (fast, book, paper); any other
    value (a number, a list) is the default in every mode. Every name must already be in
    ``namespace``: the table describes the parameters cell, it does not add to it.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    mode = "fast" if fast else scale
    sizes: dict[str, Any] = {}
    for name, value in table.items():
        if name not in namespace:
            raise ValueError(f"size {name!r} has a default but is not a parameter of this chapter")
        if isinstance(value, tuple):
            if len(value) != len(MODES):
                raise ValueError(f"size {name!r}: a tuple of defaults must be (fast, book, paper), "
                                 f"got {len(value)} values")
            value = value[MODES.index(mode)]
        given = namespace[name]
        sizes[name] = namespace[name] = value if given is None else given
    sizes["mode"] = mode
    return sizes


def cpu_only(device: str) -> str:
    """For a chapter with nothing to put on a GPU: "cpu", or a ValueError for any other device."""
    if str(device) != "cpu":
        raise ValueError(f"device: this chapter computes with numpy on the CPU only and has nothing to "
                         f"put on {device!r}; use device='cpu'")
    return "cpu"
