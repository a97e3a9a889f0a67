"""Figure style, figure creation and deterministic saving (Agg, no display, no pyplot state)."""

from __future__ import annotations

import textwrap
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from sim.errors import UserError

# font sizes in pt: nothing below 9 (readable when a figure is shrunk into a paper column)
RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.axisbelow": True,
    "svg.hashsalt": "moe-sim",  # stable element ids in SVG output
    "svg.fonttype": "path",
}
PNG_DPI = 150
FORMATS = {".png": "png", ".svg": "svg"}
# fixed metadata so the same input gives the same bytes (no date stamp)
METADATA = {"png": {"Software": "moe-sim"}, "svg": {"Date": None, "Creator": "moe-sim"}}

FAINT = "#9a9a9a"
HIGHLIGHT = "#d62728"


@contextmanager
def style():
    """rcParams for moe-sim figures, applied while artists are created and saved."""
    with matplotlib.rc_context(RC):
        yield


def new_axes(ax=None, size_in: tuple[float, float] = (6.4, 4.4)):
    """(figure, axes): the caller's axes if given, else a fresh constrained-layout Figure.

    Figures are built with matplotlib.figure.Figure, not pyplot, so nothing is registered with a
    GUI backend and nothing leaks between calls.
    """
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size_in, layout="constrained")
    return fig, fig.add_subplot()


def add_footnote(fig, *notes: str) -> None:
    """Small grey lines under the axes (e.g. how many rows were left out), wrapped to the width."""
    width_chars = max(20, int(fig.get_figwidth() / 0.075))  # ~0.075 in per 9 pt character
    lines = [ln for n in notes if n for ln in textwrap.wrap(n, width_chars)]
    if lines:
        fig.supxlabel("\n".join(lines), fontsize=9, color="#555555", x=0.99, ha="right")


def check_out_path(path: str | Path) -> str:
    """The output format ('png' or 'svg') for path; a UserError for any other extension."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise UserError(f"--out {path}: extension must be .png or .svg, got '{ext or '(none)'}'")
    return FORMATS[ext]


def save_figure(fig, path: str | Path) -> Path:
    """Write fig as PNG (dpi 150) or SVG, chosen by the extension; bytes are reproducible."""
    fmt = check_out_path(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with style():
        fig.savefig(path, format=fmt, dpi=PNG_DPI, metadata=METADATA[fmt])
    return path
