"""Figure helpers shared by every chapter: one claim per figure, measurements as markers with error
bars, theory as a dashed line in the same colour; Okabe–Ito colours survive grey-scale printing.
Signed matrices get a diverging map centred on zero. Global matplotlib style is never touched."""
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
CYCLE = [OKABE_ITO[c] for c in ("blue", "vermillion", "green", "orange", "purple", "sky", "black")]


def measured_vs_theory(ax: Axes, x, measured, predicted, *, label: str,
                       color: str = OKABE_ITO["blue"], err=None) -> None:
    """Markers (with error bars) for measurements, a dashed line in the same colour for theory."""
    ax.errorbar(x, measured, yerr=err, fmt="o", ms=4, color=color, label=f"{label}, measured")
    ax.plot(x, predicted, "--", lw=1.5, color=color, label=f"{label}, theory")


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: the exponent of a power law."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


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
