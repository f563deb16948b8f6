"""What every benchmark's result records about its run: the model and the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch


def run_meta(model_dir: Path, size: str, quick: bool) -> dict[str, Any]:
    """The ``meta`` entry of a benchmark's JSON result."""
    return {
        "model": str(model_dir),
        "size": size,
        "quick": quick,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "note": "random-weight test model: speed only, verdicts meaningless",
    }
