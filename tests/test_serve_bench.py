"""The serving benchmark runs end to end in its reduced mode (the numbers live in the README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_serve_quick_mode_writes_every_ratio(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_serve.py"), "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "LLAMAGUARD_GUARDRAILS_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = json.loads(out.read_text())
    assert numbers["overhead"]["ratio"] > 0 and numbers["concurrency"]["ratio"] > 0
    growing = numbers["growing_answer"]
    assert growing["checks"] == 10 and growing["ratio"] > 0 and growing["ratio_without_reuse"] > 0
    # the bounds: a batch of 16 gains something; ten checks run more tokens than one, fewer than without reuse
    assert numbers["concurrency"]["ceiling"]["ratio"] > 0
    floor = growing["token_floor"]
    assert floor["one_check_tokens"] < floor["ten_checks_tokens"] < 5 * floor["one_check_tokens"]
    assert "ceiling:" in result.stdout and "floor:" in result.stdout
    assert "served vs in-process" in result.stdout and "growing answer" in result.stdout
