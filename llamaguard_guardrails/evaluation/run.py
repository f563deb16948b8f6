"""``evaluate()``: run the guard over labelled rows (or read a ``moderate`` output) and measure it.

Cost: one model pass per group of policies that differ only in ``threshold``. Scores do not depend
on the threshold, and the category line is asked for whenever ``unsafe_probability >= threshold``,
so the group's pass runs at its lowest threshold and a higher threshold's verdicts follow exactly: a
row is unsafe at ``t`` iff it was unsafe in the pass and ``unsafe_probability >= t``. (For a long last
message checked in several windows the row keeps the pass's categories.) An error reading the category line becomes a safe verdict at
a threshold above its ``unsafe_probability`` (the line is not asked for there); other guard errors
stay errors at every threshold.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..core.categories import LLAMA_GUARD_4_CATEGORIES, category_name
from ..core.errors import InvalidPolicyError
from ..core.policy import Policy
from ..scale.local_engine import PretrainedFactory
from ..scale.records import DatasetError, id_text, read_rows
from . import metrics
from .labels import LabelledRow, read_labels
from .policies import Policies, named_policies, pass_key, policy_files
from .report import EvaluationReport, PolicyReport, RowProblem, ScoredRow

if TYPE_CHECKING:
    from ..guard import LlamaGuard

SWEEP = tuple(i / 20 for i in range(21))


# -- model passes -----------------------------------------------------------------------------------


class _Timed:
    """Wraps a guard factory: records every verdict's ``latency_ms`` through the guard's ``on_verdict`` hook."""

    def __init__(self, factory: Callable[[], LlamaGuard]) -> None:
        self.factory = factory
        self.latencies: list[float] = []
        self.test_model: bool | None = None

    def __call__(self) -> LlamaGuard:
        guard = self.factory()
        self.test_model = bool(getattr(guard, "is_test_model", False))
        inner = guard.on_verdict

        def on_verdict(verdict: Any, stage: str) -> None:
            self.latencies.append(verdict.latency_ms)
            if inner is not None:
                inner(verdict, stage)

        guard.on_verdict = on_verdict
        return guard


class _Pass:
    """One model pass (or a verdicts file): its rows by line, its threshold, its latency."""

    def __init__(
        self, rows: dict[int, dict[str, Any]], threshold: float, latency: Any, test_model: bool | None = None
    ) -> None:
        self.rows, self.threshold, self.latency, self.test_model = rows, threshold, latency, test_model


def _model_pass(data: Path, policy: Policy, factory: Callable[[], LlamaGuard], engine: str, options: dict) -> _Pass:
    from ..scale.moderate import moderate

    timed = _Timed(factory) if engine == "local" else None
    with tempfile.TemporaryDirectory(prefix="llamaguard-evaluate-") as tmp:
        out = Path(tmp) / "verdicts.jsonl"
        summary = moderate(data, out, guard_factory=timed or factory, engine=engine, policy=policy, **options)
        rows = _by_line(read_rows(out), out)
    note = None if timed else f"the {engine} engine does not report per-check latency"
    latency = metrics.latency(timed.latencies if timed else [], note, rows_per_second=summary.rows_per_second)
    return _Pass(rows, policy.threshold, latency, timed.test_model if timed else None)


def _by_line(rows: Iterable[Any], path: Path | str) -> dict[int, dict[str, Any]]:
    by_line: dict[int, dict[str, Any]] = {}
    for n, row in enumerate(rows, 1):
        if not isinstance(row, Mapping) or not isinstance(row.get("line"), int) or "status" not in row:
            raise DatasetError(f"{path} row {n} is not a moderate output row (needs 'line' and 'status')")
        if row["line"] in by_line:
            raise DatasetError(f"{path} has two rows for line {row['line']}")
        by_line[row["line"]] = dict(row)
    return by_line


def _verdicts_pass(path: str | os.PathLike[str], labels: list[LabelledRow], threshold: float) -> _Pass:
    if not Path(path).is_file():
        raise DatasetError(f"verdicts file {path} does not exist")
    rows = _by_line(read_rows(path), path)
    lines = {label.line for label in labels}
    extra = sorted(set(rows) - lines)
    if extra:
        raise DatasetError(
            f"{path} has rows for lines {extra[:5]} that the labelled file does not have: another file's verdicts?"
        )
    for label in labels:
        row = rows.get(label.line)
        if row is not None and not _same_id(label.id, row.get("id")):
            raise DatasetError(
                f"{path} line {label.line}: id {row.get('id')!r}, but the labelled row's id is {label.id!r}: "
                "another file's verdicts?"
            )
    return _Pass(rows, threshold, metrics.latency([], "scored from a verdicts file: no latency measured"))


def _same_id(a: Any, b: Any) -> bool:
    return a is None or b is None or a == b or id_text(a) == id_text(b)


# -- per policy --------------------------------------------------------------------------------------


def _score_rows(labels: list[LabelledRow], run: _Pass, policy: Policy) -> tuple[list[ScoredRow], list[RowProblem], int]:
    """Scored rows and undecided rows of ``policy``; also how many passed with ``p >= threshold``."""
    scored, undecided, passed_high = [], [], 0
    for label in labels:
        if label.problem is not None:
            continue  # listed once, in the report's invalid_rows
        row = run.rows.get(label.line)
        passed = row is not None and row.get("status") == "safe"
        if _safe_below(row, run.threshold, policy):
            row = {**row, "status": "safe", "categories": [], "error": None}
        problem = _undecided(label, row)
        if problem is not None:
            undecided.append(problem)
            continue
        p = float(row["unsafe_probability"])
        flagged = row["status"] == "unsafe" and p >= policy.threshold
        score = p
        if passed and p >= run.threshold:
            passed_high += 1
            if policy.excluded_categories:
                score = 0.0  # the model named only excluded categories: passed at any threshold
        scored.append(
            ScoredRow(
                line=label.line,
                id=label.id,
                unsafe=bool(label.unsafe),
                score=score,
                flagged=flagged,
                labelled_categories=label.categories,
                named_categories=tuple(row.get("categories") or ()) if flagged else (),
            )
        )
    return scored, undecided, passed_high


def _review(scored: list[ScoredRow], policy: Policy) -> dict[str, Any]:
    """The rows a human would see at the policy's thresholds: passed, with ``review_threshold <= p``."""
    if policy.review_threshold is None:
        return {}
    rows = [r for r in scored if not r.flagged and r.score >= policy.review_threshold]
    return {
        "review_rows": len(rows),
        "review_share": len(rows) / len(scored) if scored else None,
        "review_unsafe": sum(r.unsafe for r in rows),
    }


def _safe_below(row: Mapping[str, Any] | None, run_threshold: float, policy: Policy) -> bool:
    """An error row the policy's threshold would have passed without asking for the category line.

    The pass asks for the category line when ``p >= run_threshold``; an unreadable one is an error
    with the real ``p``. At a higher threshold with ``p`` below it the guard answers safe. (Model
    failures carry ``p`` 1.0 when failing closed, 0.0 when open: never in that range for a real pass.)
    """
    if row is None or row.get("status") != "error":
        return False
    p = row.get("unsafe_probability")
    if not isinstance(p, int | float) or isinstance(p, bool):
        return False
    return run_threshold <= p < policy.threshold and not (policy.fail_mode == "open" and p == 0.0)


def _undecided(label: LabelledRow, row: Mapping[str, Any] | None) -> RowProblem | None:
    def problem(kind: Literal["invalid", "error", "missing"], reason: str) -> RowProblem:
        return RowProblem(line=label.line, id=label.id, kind=kind, reason=reason)

    if row is None:
        return problem("missing", "no verdict for this line")
    status = row.get("status")
    if status == "invalid":
        return problem("invalid", row.get("error") or "the guard could not read this row")
    if status == "error":
        return problem("error", row.get("error") or "the guard failed")
    if status not in ("safe", "unsafe"):
        return problem("invalid", f"unknown verdict status {status!r}")
    p = row.get("unsafe_probability")
    if not isinstance(p, int | float) or isinstance(p, bool) or not math.isfinite(p) or not 0 <= p <= 1:
        return problem("invalid", f"the verdict has no usable unsafe_probability ({p!r})")
    return None


def policy_report(
    name: str, policy: Policy, labels: list[LabelledRow], run: _Pass, target_fpr: float | None
) -> PolicyReport:
    """Every metric of ``policy`` over the labelled rows, from the verdict rows of ``run``."""
    scored, undecided, passed_high = _score_rows(labels, run, policy)
    y = [r.unsafe for r in scored]
    scores = [r.score for r in scored]
    at = metrics.operating_point(y, [r.flagged for r in scored], policy.threshold)
    notes = metrics.undefined_reasons(at)
    auprc, roc_auc, reasons = metrics.ranking(y, scores)
    notes.update(reasons)
    best, why = metrics.best_f1(y, scores) if scored else (None, "no row was scored")
    if why:
        notes["best_f1"] = why
    at_fpr = None
    if target_fpr is not None:
        at_fpr, why = metrics.threshold_for_fpr(y, scores, target_fpr) if scored else (None, "no row was scored")
        if why:
            notes["target_fpr"] = why
    if policy.threshold > run.threshold:
        notes["derived"] = (
            f"verdicts derived from the model pass at threshold {run.threshold:g} "
            "(policies differing only in threshold share one pass)"
        )
    if passed_high and not policy.excluded_categories:
        notes["passed_above_threshold"] = (
            f"{passed_high} row(s) passed with unsafe_probability >= {run.threshold:g}: the verdicts were made "
            "at a higher threshold or with excluded categories, so lower thresholds are not exact"
        )
    with_categories = [r for r in scored if r.unsafe and r.labelled_categories]
    categories, confusions = metrics.category_metrics(
        [r.labelled_categories or () for r in with_categories],
        [r.named_categories for r in with_categories],
        lambda code: category_name(code, policy.custom_names),
    )
    review = _review(scored, policy)
    return PolicyReport(
        **review,
        name=name,
        policy=policy.model_dump(mode="json"),
        scored=len(scored),
        labelled_unsafe=sum(y),
        labelled_safe=len(y) - sum(y),
        at_threshold=at,
        auprc=auprc,
        roc_auc=roc_auc,
        best_f1=best,
        target_fpr=target_fpr,
        at_target_fpr=at_fpr,
        sweep=metrics.sweep(y, scores, SWEEP),
        category_rows=len(with_categories),
        categories=categories,
        confusions=confusions,
        latency=run.latency,
        undecided=undecided,
        notes=notes,
        rows=scored,
    )


# -- the entry point -----------------------------------------------------------------------------------


def evaluate(
    data: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    guard_factory: Callable[[], LlamaGuard] | None = None,
    verdicts: str | os.PathLike[str] | None = None,
    policies: Policies = None,
    target_fpr: float | None = 0.05,
    engine: Literal["local", "ray"] = "local",
    num_workers: int = 2,
    batch_size: int = 8,
    ray_address: str | None = None,
    num_gpus_per_worker: float = 0.0,
    guard_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> EvaluationReport:
    """Measure the guard on labelled conversations (JSONL or Parquet; see :mod:`.labels`).

    The guard: ``model`` (folder or Hugging Face id, ``guard_options`` go to ``from_pretrained``), or
    ``guard_factory`` (a picklable zero-argument callable, e.g. ``functools.partial(from_vllm, URL,
    model=...)``), run by the ``moderate`` engines (``engine="local"`` or ``"ray"``); or ``verdicts``:
    an existing ``moderate`` output of ``data``, scored without running the model (made at a threshold
    at or below every compared one). ``policies``: a Policy, a dict of its fields, a JSON file, a list
    of those, or ``{name: policy}``; default: ``Policy()``. ``target_fpr``: the false-positive rate to
    pick a threshold for (None: skip).
    """
    started = time.perf_counter()
    if sum(x is not None for x in (model, guard_factory, verdicts)) != 1:
        raise ValueError("pass exactly one of model=, guard_factory= or verdicts=")
    if target_fpr is not None and not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must be between 0 and 1, got {target_fpr}")
    metrics.sklearn_metrics()  # a missing extra fails before any file is read or model loaded
    named = named_policies(policies)
    known = set(LLAMA_GUARD_4_CATEGORIES) | {c.code for _, p in named for c in p.custom_categories}
    labels = read_labels(data, known)
    groups: dict[tuple[Any, ...], list[Policy]] = {}
    for _, policy in named:
        groups.setdefault(pass_key(policy), []).append(policy)
    passes: dict[tuple[Any, ...], _Pass] = {}
    if verdicts is not None:
        if len(groups) > 1:
            raise InvalidPolicyError(
                "a verdicts file holds one moderate run: the compared policies may differ only in threshold"
            )
        ((key, members),) = groups.items()
        passes[key] = _verdicts_pass(verdicts, labels, min(p.threshold for p in members))
    else:
        factory = guard_factory or PretrainedFactory(model, guard_options)  # type: ignore[arg-type]
        options = dict(
            num_workers=num_workers,
            batch_size=batch_size,
            ray_address=ray_address,
            num_gpus_per_worker=num_gpus_per_worker,
            progress=progress,
        )
        for key, members in groups.items():
            lowest = min(members, key=lambda p: p.threshold)
            passes[key] = _model_pass(Path(data), lowest, factory, engine, options)
    reports = [policy_report(name, p, labels, passes[pass_key(p)], target_fpr) for name, p in named]
    return EvaluationReport(
        source=str(data),
        verdicts=None if verdicts is None else str(verdicts),
        policy_files=policy_files(policies),
        engine=None if verdicts is not None else engine,
        rows=len(labels),
        test_model=_any_test_model(passes.values()),
        invalid_rows=[
            RowProblem(line=r.line, id=r.id, kind="label", reason=r.problem) for r in labels if r.problem is not None
        ],
        model_passes=0 if verdicts is not None else len(passes),
        seconds=time.perf_counter() - started,
        policies=reports,
    )


def _any_test_model(passes: Iterable[_Pass]) -> bool | None:
    flags = [p.test_model for p in passes]
    return True if any(flags) else None if None in flags else False
