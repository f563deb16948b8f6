"""Scale-out: moderate datasets locally or on a Ray cluster (``moderate``, ``GuardPredictor``).

The vLLM server backend lives in :mod:`llamaguard_guardrails.backends.vllm` (``from_vllm``).
Ray and pyarrow are imported only when used (``pip install 'llamaguard-guardrails[ray]'``).
"""

from .moderate import ModerationSummary, moderate, verdict_rows
from .ray_engine import GuardPredictor
from .records import DatasetError, Record, read_records, read_rows

__all__ = [
    "DatasetError",
    "GuardPredictor",
    "ModerationSummary",
    "Record",
    "moderate",
    "read_records",
    "read_rows",
    "verdict_rows",
]
