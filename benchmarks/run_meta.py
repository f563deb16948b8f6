"""What every benchmark shares: the test model it runs on, and what its result records about the run (the model
and the machine)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch


def bench_model(model: str | None, quick: bool) -> tuple[Path, str]:
    """(the model folder, its size): ``model`` when given, else the cached random-weight test model of the run's
    size ("tiny" for ``--quick``, "bench" otherwise), built on first use."""
    from llamaguard_guardrails.test_model import cache_dir, make_test_model

    size = "tiny" if quick else "bench"
    if model is not None:
        return Path(model), size
    model_dir = cache_dir() / f"bench-model-{size}"
    if not (model_dir / "config.json").exists():
        print(f"building the {size} random-weight test model in {model_dir} ...", file=sys.stderr)
        make_test_model(model_dir, size=size)
    return model_dir, size


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
