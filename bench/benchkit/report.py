"""Output of a benchmark run: results.json, results.md and PNG plots.

Every scenario writes into one folder (bench/results/<scenario>/ by default).
Plots use matplotlib's Agg backend at a small size so they can be committed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

BENCH_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS_ROOT = BENCH_ROOT / "results"

FIGURE_SIZE = (6.4, 3.6)
FIGURE_DPI = 100


def default_output_dir(scenario: str) -> Path:
    return DEFAULT_RESULTS_ROOT / scenario


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write `data` as indented JSON; NaN and infinity are rejected."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Render a GitHub markdown table; floats get 2-3 significant digits."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(cell) for cell in row) + " |")
    return "\n".join(lines)


def write_markdown(path: Path, title: str, sections: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n\n".join(section.strip() for section in sections if section.strip())
    path.write_text(f"# {title}\n\n{body}\n", encoding="utf-8")


def bar_chart(
    path: Path,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    title: str,
    log_scale: bool = False,
    figure_size: tuple[float, float] = FIGURE_SIZE,
    label_rotation: float = 20,
) -> None:
    """Grouped bars: one group per category, one bar per series."""
    figure, axes = plt.subplots(figsize=figure_size, dpi=FIGURE_DPI)
    count = max(1, len(series))
    width = 0.8 / count
    for index, (label, values) in enumerate(series.items()):
        positions = [i + (index - (count - 1) / 2) * width for i in range(len(values))]
        heights = [0.0 if value is None else value for value in values]
        axes.bar(positions, heights, width=width, label=label)
    axes.set_xticks(range(len(categories)))
    axes.set_xticklabels(
        categories,
        rotation=label_rotation,
        ha="right" if label_rotation else "center",
        fontsize=7,
    )
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    if log_scale:
        axes.set_yscale("log")
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    _save(figure, path)


def cdf_chart(
    path: Path,
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    title: str,
) -> None:
    """Empirical cumulative distribution of each series of values."""
    figure, axes = plt.subplots(figsize=FIGURE_SIZE, dpi=FIGURE_DPI)
    for label, values in series.items():
        if not values:
            continue
        ordered = sorted(values)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axes.step(ordered, fractions, where="post", label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("fraction of jobs")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, path)


def scatter_over_time(
    path: Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    ylabel: str,
    title: str,
    log_scale: bool = False,
) -> None:
    """Points (seconds since start, value) per series, e.g. latency over a run."""
    figure, axes = plt.subplots(figsize=FIGURE_SIZE, dpi=FIGURE_DPI)
    for label, (times, values) in series.items():
        if times:
            axes.scatter(times, values, s=6, label=label, alpha=0.7)
    axes.set_xlabel("seconds since start")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    if log_scale:
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, path)


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
