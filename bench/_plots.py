"""PNG charts for run_all.py's report: latency percentiles of paired runs, SSE memory against
open streams, and throughput against workers. matplotlib draws off-screen (Agg); it comes
with the ``bench`` extra and is imported only here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["memory_curve", "percentile_bars", "scaling_curve"]

_COLOURS = ("#3b6ea5", "#c8553d", "#6a994e", "#8d6a9f", "#bc8a2f", "#4d908e")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def percentile_bars(
    path: Path, title: str, series: Mapping[str, Mapping[str, float]], unit: str = "ms"
) -> Path:
    """Grouped bars: one group per percentile (``{"p50": ..., "p99": ...}``), one bar per
    target, on a log scale when the values span more than two decades."""
    plt = _pyplot()
    quantiles = list(dict.fromkeys(q for values in series.values() for q in values))
    width, many = 0.8 / max(1, len(series)), len(series) > 3
    fig, ax = plt.subplots(figsize=(8.4 if many else 6.4, 3.6))
    for i, (name, values) in enumerate(series.items()):
        xs = [q + i * width for q in range(len(quantiles))]
        ys = [values.get(q, 0.0) for q in quantiles]
        bars = ax.bar(xs, ys, width, label=name, color=_COLOURS[i % len(_COLOURS)])
        if not many:  # labels on a crowded chart only overlap
            ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks([q + width * (len(series) - 1) / 2 for q in range(len(quantiles))], quantiles)
    _log_if_wide(ax, [v for values in series.values() for v in values.values()])
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    outside: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1)} if many else {}
    ax.legend(fontsize=8, **outside)
    return _save(fig, path)


def _log_if_wide(ax: Any, values: Sequence[float]) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 100:
        ax.set_yscale("log")


def memory_curve(
    path: Path, title: str, points: Sequence[tuple[float, float]], goal_mib: float
) -> Path:
    """The server's RSS (MiB) against the number of open streams, with the goal as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=_COLOURS[0])
    ax.axhline(goal_mib, linestyle="--", color=_COLOURS[1], label=f"goal {goal_mib:.0f} MiB")
    ax.set_xlabel("open SSE streams")
    ax.set_ylabel("server RSS, MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def scaling_curve(
    path: Path, title: str, curves: Mapping[str, Sequence[tuple[int, float]]]
) -> Path:
    """Jobs per second against workers, one line per set-up, with ideal linear scaling dotted."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (name, points) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, ys, marker="o", label=name, color=colour)
        if xs and xs[0]:
            ideal = [ys[0] * x / xs[0] for x in xs]
            ax.plot(xs, ideal, linestyle=":", color=colour, label=f"{name}, linear")
    ax.set_xlabel("workers")
    ax.set_ylabel("jobs/s")
    ax.set_xticks(sorted({p[0] for points in curves.values() for p in points}))
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)
