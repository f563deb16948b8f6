"""Metrics from scikit-learn, with every undefined case given a defined result.

- A row is *flagged* at threshold ``t`` when its score (the guard's ``unsafe_probability``) is
  ``>= t``, as the policy decides. Tied scores are one threshold: rows with equal scores are flagged
  together, so a tie between a safe and an unsafe row is never split in anybody's favour.
- Undefined ratios are ``None``, never 0 or a crash: precision when nothing is flagged, recall when
  no row is labelled unsafe, FPR when no row is labelled safe, F1 when neither exists; AUPRC when no
  row is labelled unsafe; ROC AUC when only one class is labelled. :func:`undefined_reasons` says why.
- Best F1: the highest threshold reaching the best F1 (flags the least among equals).
- Target FPR: the lowest threshold whose FPR is at most the target, i.e. the one keeping the most
  recall; when only flagging nothing meets it, the smallest number above the highest score.

scikit-learn is imported when a function runs (``pip install 'llamaguard-guardrails[evaluate]'``).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .labels import code_order
from .report import CategoryMetrics, Confusion, Latency, OperatingPoint

EXTRA = "pip install 'llamaguard-guardrails[evaluate]'"


def sklearn_metrics() -> Any:
    """``sklearn.metrics``, or an ImportError saying which extra to install."""
    try:
        import sklearn.metrics
    except ImportError as exc:
        raise ImportError(f"evaluation needs scikit-learn: {EXTRA}") from exc
    return sklearn.metrics


def _none_if_nan(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def operating_point(y_true: Sequence[bool], y_pred: Sequence[bool], threshold: float | None) -> OperatingPoint:
    """Counts, precision, recall, F1 and FPR of the decisions ``y_pred`` against the labels ``y_true``."""
    m = sklearn_metrics()
    import numpy as np

    y, p = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    tn, fp, fn, tp = (int(x) for x in m.confusion_matrix(y, p, labels=[False, True]).ravel())
    precision = recall = f1 = None
    if len(y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined ratios come back as nan, made None below
            scores = m.precision_recall_fscore_support(y, p, average="binary", pos_label=True, zero_division=np.nan)
        precision, recall, f1 = (_none_if_nan(v) for v in scores[:3])
    if tp + fp + fn == 0:
        f1 = None  # nothing labelled unsafe and nothing flagged: F1 says nothing
    return OperatingPoint(
        threshold=threshold,
        flagged=tp + fp,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        precision=precision,
        recall=recall,
        f1=f1,
        fpr=fp / (fp + tn) if fp + tn else None,
    )


def at_threshold(y_true: Sequence[bool], scores: Sequence[float], threshold: float) -> OperatingPoint:
    """The operating point of flagging every row with ``score >= threshold``."""
    return operating_point(y_true, [s >= threshold for s in scores], threshold)


def undefined_reasons(point: OperatingPoint, prefix: str = "") -> dict[str, str]:
    """Why each ``None`` of ``point`` is undefined, keyed ``prefix + metric``."""
    reasons = {}
    if point.precision is None:
        reasons["precision"] = "no row flagged unsafe: precision is undefined"
    if point.recall is None:
        reasons["recall"] = "no row labelled unsafe: recall is undefined"
    if point.f1 is None:
        reasons["f1"] = "no row labelled unsafe and none flagged: F1 is undefined"
    if point.fpr is None:
        reasons["fpr"] = "no row labelled safe: the false-positive rate is undefined"
    return {prefix + k: v for k, v in reasons.items()}


def ranking(y_true: Sequence[bool], scores: Sequence[float]) -> tuple[float | None, float | None, dict[str, str]]:
    """Threshold-free ``(AUPRC, ROC AUC, reasons for the undefined ones)``.

    AUPRC is scikit-learn's average precision (the step-wise area under the precision-recall curve).
    """
    m = sklearn_metrics()
    positives, negatives = sum(map(bool, y_true)), sum(not y for y in y_true)
    reasons: dict[str, str] = {}
    auprc = roc_auc = None
    if positives:
        auprc = float(m.average_precision_score(list(y_true), list(scores)))
    else:
        reasons["auprc"] = "no row labelled unsafe: AUPRC is undefined"
    if positives and negatives:
        roc_auc = float(m.roc_auc_score(list(y_true), list(scores)))
    else:
        reasons["roc_auc"] = f"only rows labelled {'unsafe' if positives else 'safe'}: ROC AUC needs both"
    if not scores:
        reasons = {k: "no row was scored" for k in ("auprc", "roc_auc")}
    return auprc, roc_auc, reasons


def best_f1(y_true: Sequence[bool], scores: Sequence[float]) -> tuple[OperatingPoint | None, str | None]:
    """The highest threshold with the best F1, or ``(None, why)``."""
    if not any(y_true):
        return None, "no row labelled unsafe: F1 is undefined"
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, thresholds = sklearn_metrics().precision_recall_curve(list(y_true), list(scores))
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    best = int(np.flatnonzero(f1 == f1.max())[-1])  # thresholds ascend: the last is the highest
    return at_threshold(y_true, scores, float(thresholds[best])), None


def threshold_for_fpr(
    y_true: Sequence[bool], scores: Sequence[float], target: float
) -> tuple[OperatingPoint | None, str | None]:
    """The lowest threshold with FPR ``<= target`` (the most recall at that FPR), or ``(None, why)``."""
    if all(y_true):
        return None, "no row labelled safe: the false-positive rate is undefined"
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no unsafe rows: tpr is nan, fpr is still right
        fpr, _, thresholds = sklearn_metrics().roc_curve(list(y_true), list(scores), drop_intermediate=False)
    meeting = np.flatnonzero(fpr[1:] <= target)  # [0] is +inf: flag nothing
    if len(meeting):
        return at_threshold(y_true, scores, float(thresholds[1 + meeting[-1]])), None
    above = float(np.nextafter(max(scores), np.inf))
    if above > 1.0:
        return None, f"a row labelled safe scores 1.0: no threshold in [0, 1] keeps FPR <= {target}"
    return at_threshold(y_true, scores, above), None


def sweep(y_true: Sequence[bool], scores: Sequence[float], thresholds: Sequence[float]) -> list[OperatingPoint]:
    """The operating point at each of ``thresholds``."""
    return [at_threshold(y_true, scores, t) for t in thresholds]


def category_metrics(
    labelled: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], name: Callable[[str], str]
) -> tuple[list[CategoryMetrics], list[Confusion]]:
    """Per-category precision, recall and F1 over rows with category labels, and the label x prediction counts.

    ``predicted`` holds the categories the guard named (empty when it passed the row). A confusion
    counts the rows labelled ``labelled`` for which the guard named ``predicted`` (``"safe"``: it named
    nothing); off-diagonal cells are the categories confused with each other.
    """
    if not labelled:
        return [], []
    m = sklearn_metrics()
    import numpy as np
    from sklearn.preprocessing import MultiLabelBinarizer

    codes = sorted({c for row in (*labelled, *predicted) for c in row}, key=code_order)
    binarizer = MultiLabelBinarizer(classes=codes)
    y, p = binarizer.fit_transform(labelled), binarizer.transform(predicted)
    counts = m.multilabel_confusion_matrix(y, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, support = m.precision_recall_fscore_support(
            y, p, average=None, labels=list(range(len(codes))), zero_division=np.nan
        )
    per_category = [
        CategoryMetrics(
            code=code,
            name=name(code),
            labelled=int(support[i]),
            named=int(counts[i][1, 1] + counts[i][0, 1]),
            tp=int(counts[i][1, 1]),
            fp=int(counts[i][0, 1]),
            fn=int(counts[i][1, 0]),
            precision=_none_if_nan(precision[i]),
            recall=_none_if_nan(recall[i]),
            f1=None if counts[i][1, 1] + counts[i][0, 1] + counts[i][1, 0] == 0 else _none_if_nan(f1[i]),
        )
        for i, code in enumerate(codes)
    ]
    pairs: Counter[tuple[str, str]] = Counter()
    for label_codes, named in zip(labelled, predicted):
        for code in label_codes:
            for guess in named or ["safe"]:
                pairs[(code, guess)] += 1
    confusions = [
        Confusion(labelled=a, predicted=b, rows=n)
        for (a, b), n in sorted(pairs.items(), key=lambda kv: (-kv[1], code_order(kv[0][0]), kv[0][1]))
    ]
    return per_category, confusions


def latency(latencies_ms: Sequence[float], note: str | None = None, *, rows_per_second: float | None = None) -> Latency:
    """p50 and p95 of the per-check latencies (``None`` with ``note`` when none were measured)."""
    if not latencies_ms:
        return Latency(checks=0, rows_per_second=rows_per_second, note=note or "no check was timed")
    import numpy as np

    p50, p95 = np.percentile(np.asarray(latencies_ms, dtype=float), [50, 95])
    return Latency(
        checks=len(latencies_ms), p50_ms=float(p50), p95_ms=float(p95), rows_per_second=rows_per_second, note=note
    )
