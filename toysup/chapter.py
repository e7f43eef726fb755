"""Chapter sizes: every notebook resolves its sizes from one table with three scales.

``fast`` — CI sizes, each chapter well under a minute; ``book`` — what the rendered book shows (the
whole book in about 20 minutes on two CPU cores); ``paper`` — the specification's grids and sizes, for
a GPU or a long CPU run. A parameter the reader set explicitly (not None) always wins.
"""
from typing import Any

SCALES = ("book", "paper")


def resolve(table: dict[str, dict[str, Any]], *, fast: bool, scale: str,
            overrides: dict[str, Any]) -> dict[str, Any]:
    """Sizes for the mode: ``table[mode]`` with every non-None entry of ``overrides`` on top.

    table: {"fast": {...}, "book": {...}, "paper": {...}}; mode = "fast" if fast else scale.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    mode = "fast" if fast else scale
    if mode not in table:
        raise ValueError(f"this chapter defines no sizes for mode {mode!r}; it has {sorted(table)}")
    sizes = dict(table[mode])
    unknown = set(overrides) - set(sizes)
    if unknown:
        raise ValueError(f"unknown size parameter(s) {sorted(unknown)}; known: {sorted(sizes)}")
    sizes.update({k: v for k, v in overrides.items() if v is not None})
    sizes["mode"] = mode
    return sizes
