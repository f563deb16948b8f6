"""``evaluate`` reports the share of rows that would go to a human at the policy's two thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamaguard_guardrails.evaluation import evaluate
from llamaguard_guardrails.loading import load_prompt_builder
from test_evaluate import HAND_SET, Factory, row, write_jsonl

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path) -> tuple[Path, Factory]:
    path = write_jsonl(
        tmp_path_factory.mktemp("review") / "hand.jsonl", [row(n, *s) for n, s in enumerate(HAND_SET, 1)]
    )
    return path, Factory(load_prompt_builder(test_model_dir))


@pytest.mark.parametrize(("threshold", "review"), [(0.5, 0.25), (0.75, 0.0), (0.625, 0.5)])
def test_the_review_share_is_the_rows_between_the_two_thresholds(hand, threshold, review):
    path, factory = hand
    policies = {"grey": {"threshold": threshold, "review_threshold": review}, "plain": {"threshold": threshold}}
    report = evaluate(path, guard_factory=factory, policies=policies, progress=False)
    grey = [(unsafe, p) for unsafe, _, p, _ in HAND_SET if review <= p < threshold]
    assert report["grey"].review_rows == len(grey)
    assert report["grey"].review_share == pytest.approx(len(grey) / len(HAND_SET))
    assert report["grey"].review_unsafe == sum(unsafe for unsafe, _ in grey)
    assert report["plain"].review_rows is None and report["plain"].review_share is None
    assert report["grey"].at_threshold == report["plain"].at_threshold  # review never changes what is blocked
    assert "to human review: share" in report.table()
