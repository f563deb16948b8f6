"""PNG plots of an :class:`~.report.EvaluationReport` (matplotlib, no pyplot state; ``[evaluate]`` extra).

- ``pr_curve.png``: precision-recall curve per policy; marked: the policy's threshold (o), the best
  F1 (*), the target-FPR threshold (s).
- ``roc_curve.png``: ROC curve per policy with the same marks.
- ``scores_<policy>.png``: histograms of the unsafe probability of rows labelled safe and unsafe,
  with the policy's threshold.
- ``category_f1.png``: per-category F1, one bar per policy (only with category labels).

A curve that is undefined (one class only) is left out and the plot says so.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import output_path, write_atomic
from .labels import code_order

if TYPE_CHECKING:
    from .report import EvaluationReport, OperatingPoint, PolicyReport

MARKS = (("at_threshold", "o", "threshold"), ("best_f1", "*", "best F1"), ("at_target_fpr", "s", "target FPR"))


def _figure(width: float = 6.0, height: float = 4.5) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'llamaguard-guardrails[evaluate]'") from exc
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def slug(name: str) -> str:
    """A file-name-safe form of a policy name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "policy"


def _labels_scores(p: PolicyReport) -> tuple[list[bool], list[float]]:
    return [r.unsafe for r in p.rows], [r.score for r in p.rows]


def _mark(ax: Any, p: PolicyReport, color: str, xy: Any) -> None:
    for attr, marker, _ in MARKS:
        point: OperatingPoint | None = getattr(p, attr)
        if point is None or xy(point) is None:
            continue
        x, y = xy(point)
        ax.plot([x], [y], marker=marker, color=color, markersize=11 if marker == "*" else 7, linestyle="none")


def _mark_legend(ax: Any) -> None:
    """Legend entries for the marker shapes (the colours are the policies)."""
    for _, marker, label in MARKS:
        ax.plot([], [], marker=marker, color="0.3", linestyle="none", label=label)


def pr_figure(report: EvaluationReport) -> Any:
    """Precision-recall curves with the chosen thresholds marked."""
    from sklearn.metrics import precision_recall_curve

    fig = _figure()
    ax = fig.add_subplot()
    skipped = []
    for i, p in enumerate(report.policies):
        y, s = _labels_scores(p)
        if not any(y):
            skipped.append(p.name)
            continue
        color = f"C{i}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            precision, recall, _ = precision_recall_curve(y, s)
        ax.step(recall, precision, where="post", color=color, label=f"{p.name} (AUPRC {p.auprc:.3f})")
        _mark(ax, p, color, lambda q: None if q.recall is None or q.precision is None else (q.recall, q.precision))
    _finish(ax, "recall", "precision", _title("Precision-recall", report), skipped, "no row labelled unsafe")
    return fig


def roc_figure(report: EvaluationReport) -> Any:
    """ROC curves with the chosen thresholds marked."""
    from sklearn.metrics import roc_curve

    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.8", linestyle="--", linewidth=1)
    skipped = []
    for i, p in enumerate(report.policies):
        y, s = _labels_scores(p)
        if p.roc_auc is None:
            skipped.append(p.name)
            continue
        color = f"C{i}"
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        ax.plot(fpr, tpr, color=color, label=f"{p.name} (AUC {p.roc_auc:.3f})")
        _mark(ax, p, color, lambda q: None if q.fpr is None or q.recall is None else (q.fpr, q.recall))
    _finish(ax, "false-positive rate", "recall (true-positive rate)", _title("ROC", report), skipped, "one class only")
    return fig


def _title(title: str, report: EvaluationReport) -> str:
    return f"{title} (random-weight TEST model: meaningless)" if report.test_model else title


def _finish(ax: Any, xlabel: str, ylabel: str, title: str, skipped: list[str], why: str) -> None:
    _mark_legend(ax)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(-0.02, 1.02), ylim=(-0.02, 1.05))
    ax.grid(alpha=0.3)
    if skipped:
        ax.text(0.5, 0.5, f"not defined ({why}): {', '.join(skipped)}", ha="center", fontsize=8, transform=ax.transAxes)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower left")


def score_figure(p: PolicyReport) -> Any:
    """Histograms of the unsafe probability, split by label, with the policy's threshold."""
    fig = _figure(6.0, 3.5)
    ax = fig.add_subplot()
    bins = [i / 20 for i in range(21)]
    safe = [r.score for r in p.rows if not r.unsafe]
    unsafe = [r.score for r in p.rows if r.unsafe]
    ax.hist(
        [safe, unsafe],
        bins=bins,
        label=[f"labelled safe ({len(safe)})", f"labelled unsafe ({len(unsafe)})"],
        color=["C2", "C3"],
        alpha=0.8,
    )
    threshold = p.at_threshold.threshold
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    if p.at_target_fpr is not None:
        ax.axvline(
            p.at_target_fpr.threshold,
            color="C0",
            linestyle=":",
            linewidth=1.5,
            label=f"FPR <= {p.target_fpr:g} at {p.at_target_fpr.threshold:.3g}",
        )
    ax.set(xlabel="unsafe probability", ylabel="rows", title=f"Scores by label: {p.name}", xlim=(0, 1))
    ax.legend(fontsize=8)
    return fig


def category_figure(report: EvaluationReport) -> Any | None:
    """Per-category F1 bars, one per policy; None without category labels."""
    codes = sorted({c.code for p in report.policies for c in p.categories}, key=code_order)
    if not codes:
        return None
    fig = _figure(max(6.0, 0.6 * len(codes) * max(1, len(report.policies))), 3.5)
    ax = fig.add_subplot()
    width = 0.8 / len(report.policies)
    for i, p in enumerate(report.policies):
        f1 = {c.code: c.f1 for c in p.categories}
        xs = [k + i * width for k in range(len(codes))]
        ax.bar(xs, [f1.get(code) or 0.0 for code in codes], width=width, color=f"C{i}", label=p.name)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(codes))], codes)
    ax.set(ylabel="F1", ylim=(0, 1.05), title="Per-category F1 (rows labelled unsafe with categories)")
    ax.legend(fontsize=8)
    return fig


def save_plots(report: EvaluationReport, directory: str | os.PathLike[str]) -> list[Path]:
    """Write every plot of ``report`` as PNG into ``directory`` (created), each atomically and never over one of the
    report's input files; returns the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"pr_curve.png": pr_figure(report), "roc_curve.png": roc_figure(report)}
    figures.update({f"scores_{slug(p.name)}.png": score_figure(p) for p in report.policies})
    categories = category_figure(report)
    if categories is not None:
        figures["category_f1.png"] = categories
    paths = [output_path(out / name, report.inputs(), what="plot") for name in figures]  # all checked first
    for path, fig in zip(paths, figures.values()):
        write_atomic(path, lambda handle, fig=fig: fig.savefig(handle, format="png"))
    return paths
