"""What every figure style shares: the figure sizes and colours, the file a figure is saved as (PNG and PDF), and
the tables some figures write beside them."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

DPI = 150
LINE_SIZE = (7.0, 4.2)  # inches: band and line figures (1050 × 630 px at DPI)
LEGEND_SIZE = (9.0, 4.2)  # with many lines: the legend sits to the right of the axes
HIST_SIZE = (11.0, 4.2)  # curves and histograms of barriers side by side
PANEL = (4.2, 3.4)
PCA_PANEL = (3.4, 3.2)
MAX_LEGEND = 24
MAX_PAIR_LABELS = 40  # a pairs figure with more rows is a scatter (compare value vs. value)
FORMATS = ("png", "pdf")
DASHES = ["-", "--", ":", "-."]
VERDICT_COLOURS = {True: "#2a9d3f", False: "#d62728", None: "0.5"}


@dataclass
class FigureFile:
    stage: str
    name: str
    paths: list[Path]
    size_px: tuple[int, int]
    units: int  # curves drawn: units, or chained paths
    what: str = "units"
    tables: list[Path] = field(default_factory=list)  # a pairs figure's table (md, csv)


def plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


def save(fig: Any, base: Path, formats: Sequence[str]) -> list[Path]:
    pyplot = plt()
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in formats:
        path = base.with_name(base.name + "." + ext)
        fig.savefig(path, dpi=DPI, format=ext)
        paths.append(path)
    pyplot.close(fig)
    return paths


def fitted_title(fig: Any, text: str, fontsize: float, bold: bool = False) -> str:
    """``text`` broken into lines that fit the figure's width: a long title is wrapped, never cut at the edges."""
    import textwrap

    per_char = fontsize / 72 * (0.62 if bold else 0.55)  # inches: a generous average glyph width of the sans font
    chars = max(20, int(fig.get_size_inches()[0] * 0.95 / per_char))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def size_px(fig: Any) -> tuple[int, int]:
    w, h = fig.get_size_inches()
    return round(w * DPI), round(h * DPI)


def log_ticks(ax: Any) -> None:
    lo, hi = ax.get_ylim()
    if lo > 0 and hi / lo < 10:  # less than a decade: a few plainly labelled ticks, not 2.7 × 10⁻² or none
        from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))


def write_table(
    base: Path, title: str, head: list[str], lines: list[list[str]], left: int = 1, note: str = ""
) -> list[Path]:
    """A figure's table beside it, as ``<base>.md`` (the first ``left`` columns left-aligned) and ``<base>.csv``."""
    md = base.with_name(base.name + ".md")
    md.write_text(
        f"## {title}\n\n| "
        + " | ".join(head)
        + " |\n| "
        + " | ".join("---" if i < left else "---:" for i in range(len(head)))
        + " |\n"
        + "".join("| " + " | ".join(line) + " |\n" for line in lines)
        + (f"\n{note}\n" if note else "")
    )
    path_csv = base.with_name(base.name + ".csv")
    with open(path_csv, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(head)
        writer.writerows(lines)
    return [md, path_csv]
