"""The typed evaluation report: JSON (``to_json``), a side-by-side text table (``str``), a DataFrame (``to_frame``).

Undefined metrics are ``None`` and ``notes`` says why (see :mod:`.metrics`); rows that were not
scored are listed with the reason (``invalid_rows``: unusable labels; ``PolicyReport.undecided``:
guard errors and conversations the guard could not read).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..core.policy import Policy
from ..files import output_path, strict_json, write_atomic
from .labels import code_order


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class OperatingPoint(_Model):
    """The confusion counts and ratios of flagging every row with ``score >= threshold``."""

    threshold: float | None
    flagged: int
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None
    recall: float | None
    f1: float | None
    fpr: float | None


class CategoryMetrics(_Model):
    """One category over the rows labelled unsafe with categories: how often the guard named it rightly."""

    code: str
    name: str
    labelled: int
    named: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None


class Confusion(_Model):
    """Rows labelled ``labelled`` for which the guard named ``predicted`` (``"safe"``: nothing)."""

    labelled: str
    predicted: str
    rows: int


class Latency(_Model):
    """Per-check latency (a verdict's ``latency_ms``: in batches, the time of the batch call that checked it)."""

    checks: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    rows_per_second: float | None = None
    note: str | None = None


class RowProblem(_Model):
    """A row that was not scored, and why: ``label`` (its labels), ``invalid`` or ``error`` (the guard)."""

    line: int
    id: Any = None
    kind: Literal["label", "invalid", "error", "missing"]
    reason: str


class ScoredRow(_Model):
    """A scored row: its labels, the guard's unsafe probability (the score) and the categories it named."""

    line: int
    id: Any = None
    unsafe: bool
    score: float
    flagged: bool
    labelled_categories: tuple[str, ...] | None = None
    named_categories: tuple[str, ...] = ()


class PolicyReport(_Model):
    """Everything measured for one policy."""

    name: str
    policy: dict[str, Any]
    scored: int
    labelled_unsafe: int
    labelled_safe: int
    at_threshold: OperatingPoint
    auprc: float | None
    roc_auc: float | None
    best_f1: OperatingPoint | None
    target_fpr: float | None
    at_target_fpr: OperatingPoint | None
    sweep: list[OperatingPoint]
    category_rows: int
    categories: list[CategoryMetrics]
    confusions: list[Confusion]
    latency: Latency
    undecided: list[RowProblem]
    notes: dict[str, str] = Field(default_factory=dict, description="why a metric is undefined, or a caveat")
    review_rows: int | None = Field(
        default=None, description="rows in the grey zone (review_threshold <= p < threshold); None: no grey zone"
    )
    review_share: float | None = Field(default=None, description="review_rows / rows scored")
    review_unsafe: int | None = Field(default=None, description="labelled unsafe rows among review_rows")
    rows: list[ScoredRow] = Field(default_factory=list, exclude=True, repr=False)

    def as_policy(self) -> Policy:
        """The evaluated :class:`Policy`."""
        return Policy(**self.policy)

    def calibrated(self, choice: Literal["target_fpr", "best_f1"] = "target_fpr") -> Policy:
        """This policy with the threshold of the target-FPR (or best-F1) operating point."""
        point = self.at_target_fpr if choice == "target_fpr" else self.best_f1
        if point is None or point.threshold is None:
            why = self.notes.get(choice, "it was not computed")
            raise ValueError(f"policy {self.name!r} has no {choice} threshold: {why}")
        return self.as_policy().model_copy(update={"threshold": point.threshold})


class EvaluationReport(_Model):
    """The result of :func:`~llamaguard_guardrails.evaluation.evaluate`: one :class:`PolicyReport` per policy."""

    source: str
    verdicts: str | None = None
    policy_files: list[str] = Field(default_factory=list, description="the policy files read (never written over)")
    engine: str | None = None
    test_model: bool | None = Field(default=None, description="the random-weight test model ran (None: not known)")
    rows: int
    invalid_rows: list[RowProblem]
    model_passes: int
    seconds: float
    policies: list[PolicyReport]

    def __getitem__(self, name: str) -> PolicyReport:
        for report in self.policies:
            if report.name == name:
                return report
        raise KeyError(f"no policy named {name!r}; policies: {[p.name for p in self.policies]}")

    def to_json(self, path: str | os.PathLike[str] | None = None, *, rows: bool = False) -> str:
        """The report as strict JSON (``rows=True`` adds every scored row; an undefined metric is ``null``, never
        NaN); written atomically to ``path`` when given, which must not be one of the files the report was made from."""
        data = self.model_dump(mode="json")
        if rows:
            for entry, report in zip(data["policies"], self.policies):
                entry["rows"] = [r.model_dump(mode="json") for r in report.rows]
        text = strict_json(data, indent=2, ensure_ascii=False)
        if path is not None:
            target = output_path(path, self.inputs(), what="report")
            write_atomic(target, lambda handle: handle.write((text + "\n").encode("utf-8")))
        return text

    def inputs(self) -> list[str]:
        """The files this report was made from (a report or plot is never written over one of them)."""
        return [p for p in (self.source, self.verdicts, *self.policy_files) if p]

    def to_frame(self) -> Any:
        """One pandas row per policy (the headline metrics)."""
        return _pandas().DataFrame([summary_row(p) for p in self.policies]).set_index("policy")

    def category_frame(self) -> Any:
        """One pandas row per (policy, category)."""
        rows = [{"policy": p.name, **c.model_dump()} for p in self.policies for c in p.categories]
        return _pandas().DataFrame(rows)

    def save_plots(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write the PNG plots (see :mod:`.plots`) to ``directory``; returns their paths."""
        from .plots import save_plots

        return save_plots(self, directory)

    def table(self, *, max_listed: int = 10) -> str:
        """The report as text: the metrics side by side, per-category tables, rows not scored."""
        return render_table(self, max_listed=max_listed)

    def __str__(self) -> str:
        return self.table()


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise ImportError("to_frame() needs pandas: pip install 'llamaguard-guardrails[evaluate]'") from exc
    return pandas


def summary_row(p: PolicyReport) -> dict[str, Any]:
    """The headline numbers of one policy, flat."""
    at, best, fpr = p.at_threshold, p.best_f1, p.at_target_fpr
    return {
        "policy": p.name,
        "threshold": at.threshold,
        "scored": p.scored,
        "undecided": len(p.undecided),
        "tp": at.tp,
        "fp": at.fp,
        "fn": at.fn,
        "tn": at.tn,
        "precision": at.precision,
        "recall": at.recall,
        "f1": at.f1,
        "fpr": at.fpr,
        "auprc": p.auprc,
        "roc_auc": p.roc_auc,
        "best_f1_threshold": best.threshold if best else None,
        "best_f1": best.f1 if best else None,
        "target_fpr": p.target_fpr,
        "target_fpr_threshold": fpr.threshold if fpr else None,
        "target_fpr_recall": fpr.recall if fpr else None,
        "review_share": p.review_share,
        "latency_p50_ms": p.latency.p50_ms,
        "latency_p95_ms": p.latency.p95_ms,
    }


# -- text -----------------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _threshold(value: float | None) -> str:
    """3 decimals when exact, else in full: a rounded threshold could flag other rows."""
    if value is None:
        return "-"
    short = f"{value:.3f}"
    return short if float(short) == value else repr(value)


def _metric_lines(report: EvaluationReport) -> list[tuple[str, Callable[[PolicyReport], str]]]:
    lines: list[tuple[str, Callable[[PolicyReport], str]]] = [
        ("threshold", lambda p: _threshold(p.at_threshold.threshold)),
        ("rows scored", lambda p: str(p.scored)),
        ("  labelled unsafe / safe", lambda p: f"{p.labelled_unsafe} / {p.labelled_safe}"),
        ("rows not decided", lambda p: str(len(p.undecided))),
        ("flagged unsafe", lambda p: str(p.at_threshold.flagged)),
        ("TP / FP / FN / TN", lambda p: _counts(p.at_threshold)),
        ("precision", lambda p: _num(p.at_threshold.precision)),
        ("recall", lambda p: _num(p.at_threshold.recall)),
        ("F1", lambda p: _num(p.at_threshold.f1)),
        ("false-positive rate", lambda p: _num(p.at_threshold.fpr)),
        ("AUPRC", lambda p: _num(p.auprc)),
        ("ROC AUC", lambda p: _num(p.roc_auc)),
        ("best F1: threshold", lambda p: _threshold(p.best_f1.threshold) if p.best_f1 else "-"),
        ("  F1 / precision / recall", lambda p: _triple(p.best_f1, "f1", "precision", "recall")),
    ]
    targets = {p.target_fpr for p in report.policies if p.target_fpr is not None}
    if targets:
        label = f"FPR <= {targets.pop()}" if len(targets) == 1 else "FPR <= target"
        lines += [
            (f"{label}: threshold", lambda p: _threshold(p.at_target_fpr.threshold) if p.at_target_fpr else "-"),
            ("  recall / FPR", lambda p: _triple(p.at_target_fpr, "recall", "fpr")),
        ]
    if any(p.review_rows is not None for p in report.policies):
        lines += [
            ("to human review: share", lambda p: _num(p.review_share)),
            (
                "  rows / labelled unsafe",
                lambda p: "-" if p.review_rows is None else f"{p.review_rows} / {p.review_unsafe}",
            ),
        ]
    lines.append(("latency p50 / p95 ms", lambda p: _latency(p.latency)))
    return lines


def _counts(point: OperatingPoint) -> str:
    return f"{point.tp} / {point.fp} / {point.fn} / {point.tn}"


def _triple(point: OperatingPoint | None, *names: str) -> str:
    return "-" if point is None else " / ".join(_num(getattr(point, n)) for n in names)


def _latency(latency: Latency) -> str:
    if latency.p50_ms is None:
        return "-"
    return f"{latency.p50_ms:.0f} / {latency.p95_ms:.0f}"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def render_table(report: EvaluationReport, *, max_listed: int = 10) -> str:
    source = f"{report.source} scored from {report.verdicts}" if report.verdicts else report.source
    out = ["WARNING: the random-weight TEST model ran - these numbers are meaningless", ""] if report.test_model else []
    out += [
        f"evaluate {source}: {report.rows} rows, {len(report.invalid_rows)} with unusable labels, "
        f"{report.model_passes} model pass(es), {report.seconds:.1f} s",
        "",
    ]
    grid = [["", *(p.name for p in report.policies)]]
    grid += [[label, *(cell(p) for p in report.policies)] for label, cell in _metric_lines(report)]
    out += _columns(grid)
    for p in report.policies:
        notes = [f"  {k}: {v}" for k, v in p.notes.items()]
        if notes:
            out += ["", f"notes ({p.name}):", *notes]
    out += _category_table(report)
    out += _listing("rows with unusable labels (never scored)", report.invalid_rows, max_listed)
    for p in report.policies:
        out += _listing(
            f"rows the guard did not decide ({p.name}; not counted as safe or unsafe)", p.undecided, max_listed
        )
    return "\n".join(out)


def _category_table(report: EvaluationReport) -> list[str]:
    """One table: per category and policy, rows labelled with it, rows it was named for, P / R / F1."""
    policies = [p for p in report.policies if p.categories]
    if not policies:
        return []
    codes = sorted({c.code for p in policies for c in p.categories}, key=code_order)
    by_policy = {p.name: {c.code: c for c in p.categories} for p in policies}
    grid = [["code", "name", *(f"{p.name}: labelled, named: P / R / F1" for p in policies)]]
    for code in codes:
        first = next(by_policy[p.name][code] for p in policies if code in by_policy[p.name])
        cells = [code, first.name]
        for p in policies:
            c = by_policy[p.name].get(code)
            counts = "-" if c is None else f"{c.labelled:>3}, {c.named:>3}"
            cells.append(counts if c is None else f"{counts}: {_num(c.precision)} / {_num(c.recall)} / {_num(c.f1)}")
        grid.append(cells)
    rows = ", ".join(f"{p.category_rows} ({p.name})" for p in policies)
    out = ["", f"categories, over the scored rows labelled unsafe with categories: {rows}", *_columns(grid)]
    for p in policies:
        confused = [c for c in p.confusions if c.labelled != c.predicted][:5]
        if confused:
            pairs = ", ".join(f"{c.labelled} -> {c.predicted} ({c.rows})" for c in confused)
            out.append(f"most confused ({p.name}): {pairs}")
    return out


def _listing(title: str, problems: Iterable[RowProblem], max_listed: int) -> list[str]:
    problems = list(problems)
    if not problems:
        return []
    lines = ["", f"{title}: {len(problems)}"]
    for problem in problems[:max_listed]:
        where = f"line {problem.line}" + (f" (id {problem.id!r})" if problem.id is not None else "")
        lines.append(f"  {where}: {problem.kind}: {problem.reason}")
    if len(problems) > max_listed:
        lines.append(f"  ... and {len(problems) - max_listed} more (all in the JSON report)")
    return lines
