"""The benchmark runs end to end in its reduced mode (CI proves it works; the numbers live in the README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # the whole benchmark in its reduced mode: ~5 minutes on 2 cores
def test_bench_guard_quick_mode_writes_every_ratio(tmp_path):
    out = tmp_path / "bench.json"
    env_cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_guard.py"), "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "LLAMAGUARD_GUARDRAILS_CACHE": str(env_cache)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    numbers = json.loads(out.read_text())
    for key in ("vs_generate", "vs_bare_forward", "prefix_cache", "concurrency", "memory", "agent_next_turn"):
        assert key in numbers
    for key in ("ceiling_prefix_cache", "ceiling_vs_generate"):
        assert numbers[key]["speedup"] > 0
    assert numbers["vs_generate"]["speedup"] > 0 and numbers["memory"]["checks"] == 200
    assert numbers["agent_next_turn"]["prompt_tokens"] > 500
    assert numbers["streamed_answer"]["checks"] > 3
    assert numbers["screenshot_next_turn"]["prompt_tokens"] > 1887  # the screenshot alone is 1,887 tokens
    assert numbers["agent_over_the_limit"]["first_trimmed_check"] > 0  # the agent crosses max_prompt_tokens
    assert numbers["head_kernels"]["rows_2"]["weight_first_ms"] > 0
    assert "safe check vs generate" in result.stdout and "next agent turn" in result.stdout
