"""The ``eval --plot`` chart: metrics per run as grouped bars, each bar labelled; and the
metric labels the chart and ``eval``'s table share."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

METRIC_LABELS = {"ndcg": "nDCG", "recall": "Recall", "mrr": "MRR"}


def metric_label(metric: str) -> str:
    """``ndcg@10`` -> ``nDCG@10``."""
    name, _, cutoff = metric.partition("@")
    return f"{METRIC_LABELS.get(name, name)}@{cutoff}" if cutoff else METRIC_LABELS.get(name, name)


def plot_report(report: Mapping[str, Any], out: Path) -> None:
    """Write a PNG (or any format matplotlib infers from ``out``) of the report's metrics."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, works on servers and in CI
    import matplotlib.pyplot as plt

    metrics: list[str] = list(report["metrics"])
    runs: dict[str, Mapping[str, float]] = dict(report["runs"])
    width = 0.8 / max(len(runs), 1)
    figure, axes = plt.subplots(figsize=(2.2 + 2.2 * len(metrics), 4.2))
    for index, (name, values) in enumerate(runs.items()):
        offsets = [m + (index - (len(runs) - 1) / 2) * width for m in range(len(metrics))]
        bars = axes.bar(offsets, [values[m] for m in metrics], width, label=name)
        # Vertical labels: side by side they overlap once there are more than ~5 runs.
        axes.bar_label(bars, fmt="%.3f", padding=2, fontsize=7, rotation=90)
    axes.set_xticks(range(len(metrics)), [metric_label(m) for m in metrics])
    axes.set_ylim(0, 1.18)
    axes.set_ylabel("score")
    axes.set_title(
        f"{report['dataset']} ({report['split']}): {report['num_docs']} documents, "
        f"{report['num_queries']} queries"
    )
    # Below the axes: bars can reach 1.0, where a legend inside would hide their labels.
    axes.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.09), ncols=min(len(runs), 4), frameon=False
    )
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=150)
    plt.close(figure)
