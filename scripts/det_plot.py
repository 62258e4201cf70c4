"""DET curves for the benchmarks: miss rate against false alarms an hour, a point per threshold."""

from __future__ import annotations

from pathlib import Path


def det_plot(curves: dict[str, list[tuple[float, float, str]]], path: Path, title: str, xlabel: str) -> None:
    """Draw `{curve name: [(false alarms per hour, miss rate %, point label)]}` to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        for fa, miss, label in points:
            ax.annotate(label, (fa, miss), fontsize=7)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("miss rate %")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
