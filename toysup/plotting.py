"""Figure helpers shared by every chapter: one claim per figure, measurements as markers with error
bars, theory as a dashed line in the same colour; Okabe–Ito colours survive grey-scale printing.
Signed matrices get a diverging map centred on zero. Global matplotlib style is never touched."""
import re
from itertools import cycle

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm

from toysup import fits

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
CYCLE = [OKABE_ITO[c] for c in ("blue", "vermillion", "green", "orange", "purple", "sky", "black")]
# Diverging "carpet" palette of the Persian-rug pictures (navy - teal - cream - ochre - wine), centre cream
CARPET = LinearSegmentedColormap.from_list(
    "carpet", ["#0b1d3a", "#1f5f8b", "#5fb3b3", "#f4ead5", "#e0a43a", "#b5321c", "#4a0d16"])


def measured_vs_theory(ax: Axes, x, measured, predicted, *, label: str,
                       color: str = OKABE_ITO["blue"], err=None, line: str = "theory") -> None:
    """Markers (with error bars) for measurements, a dashed line in the same colour for theory.
    ``line`` names the dashed curve in the legend: "theory", or "fit" when it is fitted to the markers."""
    ax.errorbar(x, measured, yerr=err, fmt="o", ms=4, color=color, label=f"{label}, measured")
    ax.plot(x, predicted, "--", lw=1.5, color=color, label=f"{label}, {line}")


def signed_matrix(ax: Axes, matrix: np.ndarray, *, label: str, cmap: str = "RdBu_r",
                  limit: float | None = None):
    """Show a signed matrix with a diverging colour map centred on zero and a labelled colour bar.
    NaN entries are left blank (e.g. a gap column before a bias column)."""
    matrix = np.asarray(matrix, dtype=float)
    limit = float(np.nanmax(np.abs(matrix))) if limit is None else limit
    image = ax.imshow(matrix, cmap=cmap, norm=TwoSlopeNorm(0.0, -limit, limit),
                      interpolation="nearest")
    plt.colorbar(image, ax=ax, label=label, shrink=0.85)
    return image


def fit_power_law(ax: Axes, x, y, *, color: str, label: str, marker: str | None = "o",
                  span=None, **marker_style) -> fits.PowerLaw:
    """Markers at (x, y) and the least-squares power law through them (``fits.power_law``) as a thin
    solid line of the same colour over ``span`` (default: x). ``label`` may hold ``{slope}`` or
    ``{slope:+.2f}`` (any format spec; other braces, as in TeX, are kept); it names the markers, or
    the line when ``marker`` is None (no markers). Returns the fit."""
    law = fits.power_law(x, y)
    text = re.sub(r"\{slope(?::([^}]*))?\}", lambda m: format(law.slope, m.group(1) or ""), label)
    if marker is not None:
        ax.plot(x, y, marker, color=color, label=text, **marker_style)
    xs = np.asarray(x if span is None else span, float)
    ax.plot(xs, law(xs), "-", lw=1, color=color, label=text if marker is None else None)
    return law


def width_ticks(ax: Axes, widths) -> None:
    """Label a log x axis at exactly the grid's widths, without minor ticks."""
    ax.set_xticks(widths, labels=[str(d) for d in widths], minor=False)
    ax.set_xticks([], minor=True)


def grouped_errorbars(ax: Axes, frame: pd.DataFrame, by: str, x: str, y: str, *, err=None,
                      span: tuple[str, str] | None = None, label: str | None = None,
                      markers: str = "osD^v", line: str = "", colors=CYCLE, **style) -> None:
    """One error-bar series per group of ``frame.groupby(by, sort=False)`` (first-appearance order),
    colours from ``colors`` and markers from ``markers``, both cycled; ``line`` ("-" joins the markers).

    Bars: ``err`` names a column of standard errors, or ``span = (low, high)`` names two columns for
    bars from low to high. ``label`` is formatted with the group's first row (``"$n={n}$"``); None
    labels each series with its group key. ``style`` goes to ``ax.errorbar`` (ms, lw, mfc, ...)."""
    if err is not None and span is not None:
        raise ValueError("give err (a column of standard errors) or span (low, high columns), not both")
    for (key, rows), color, marker in zip(frame.groupby(by, sort=False), cycle(colors), cycle(markers)):
        yerr = rows[err] if err is not None else None
        if span is not None:
            yerr = [rows[y] - rows[span[0]], rows[span[1]] - rows[y]]
        text = key if label is None else label.format(**{c: rows[c].iloc[0] for c in rows.columns})
        ax.errorbar(rows[x], rows[y], yerr=yerr, fmt=marker + line, color=color, label=text, **style)
