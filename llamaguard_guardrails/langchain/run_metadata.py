"""The verdicts of a LangChain run in its metadata, so LangSmith (or any LangChain tracer) shows them.

Each check made inside a traced run adds a short entry to the run's ``metadata["llamaguard"]`` list (the run of the
guard runnable, or of the agent node whose middleware hook checked): stage, outcome, categories, unsafe
probability, thresholds, languages, whether the verdict can be trusted, error. Never the checked content.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.verdict import Verdict

METADATA_KEY = "llamaguard"


def entry(verdict: Verdict, stage: str | None) -> dict[str, Any]:
    """What one check adds to the run's metadata."""
    return {
        "stage": stage,
        "outcome": verdict.outcome,
        "categories": list(verdict.categories),
        "unsafe_probability": verdict.unsafe_probability,
        "threshold": verdict.threshold,
        "review_threshold": verdict.review_threshold,
        "languages": list(verdict.languages),
        "trusted": verdict.trusted,
        "error": verdict.error,
    }


def annotate_run(verdicts: Sequence[Verdict], stage: str | None) -> None:
    """Add ``verdicts`` to the current traced run's metadata; nothing when no run is traced."""
    try:
        from langsmith.run_helpers import get_current_run_tree
    except ImportError:  # pragma: no cover - langsmith comes with langchain-core
        return
    run = get_current_run_tree()
    if run is None or not verdicts:
        return
    metadata = (run.extra or {}).get("metadata") or {}
    run.add_metadata({METADATA_KEY: [*metadata.get(METADATA_KEY, []), *(entry(v, stage) for v in verdicts)]})


__all__ = ["annotate_run", "entry"]
