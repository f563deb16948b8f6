"""Evaluate and calibrate the guard on your own labelled conversations.

>>> from llamaguard_guardrails import evaluate
>>> report = evaluate("labelled.jsonl", model="meta-llama/Llama-Guard-4-12B",
...                   policies={"default": {}, "strict": {"threshold": 0.3}})  # doctest: +SKIP
>>> print(report)                                    # the metrics side by side  # doctest: +SKIP
>>> report["default"].calibrated()                   # the Policy for the target FPR  # doctest: +SKIP

Modules: :mod:`.labels` (labelled rows), :mod:`.metrics` (scikit-learn), :mod:`.report` (the typed
report), :mod:`.plots` (matplotlib), :mod:`.run` (``evaluate``), :mod:`.cli` (the command). Importing
this package imports neither scikit-learn nor matplotlib (``pip install 'llamaguard-guardrails[evaluate]'``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .labels import LabelledRow, read_labels
from .policies import load_policy
from .report import CategoryMetrics, Confusion, EvaluationReport, Latency, OperatingPoint, PolicyReport, RowProblem
from .run import evaluate


def sample_path() -> Path:
    """The small labelled sample shipped with the package (labels written for this project; see its README)."""
    return Path(str(resources.files(__package__).joinpath("data", "sample.jsonl")))


__all__ = [
    "CategoryMetrics",
    "Confusion",
    "EvaluationReport",
    "LabelledRow",
    "Latency",
    "OperatingPoint",
    "PolicyReport",
    "RowProblem",
    "evaluate",
    "load_policy",
    "read_labels",
    "sample_path",
]
