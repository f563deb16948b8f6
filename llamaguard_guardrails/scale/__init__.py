"""Scale-out: moderate datasets locally or on a Ray cluster (``moderate``, ``GuardPredictor``).

The vLLM server backend lives in :mod:`llamaguard_guardrails.backends.vllm` (``from_vllm``).
Ray and pyarrow are imported only when used (``pip install 'llamaguard-guardrails[ray]'``).

Building blocks, for your own pipelines: ``read_records(path)`` (lazy, bad rows in place) ->
``verdict_batches(records, PretrainedFactory(model), engine=...)`` (batches of verdict rows, in
order) -> ``RowWriter(path).write(batch)``.
"""

from .local_engine import PretrainedFactory, verdict_rows
from .moderate import ModerationSummary, moderate, verdict_batches
from .ray_engine import GuardPredictor
from .records import DatasetError, Record, RowWriter, count_records, read_records, read_rows

__all__ = [
    "DatasetError",
    "GuardPredictor",
    "ModerationSummary",
    "PretrainedFactory",
    "Record",
    "RowWriter",
    "count_records",
    "moderate",
    "read_records",
    "read_rows",
    "verdict_batches",
    "verdict_rows",
]
