"""The one enforcement step every adapter uses: verdict -> proceed, raise or refusal."""

from __future__ import annotations

import logging

import pytest

from llamaguard_guardrails import InvalidPolicyError, UnsafeContentError, Verdict
from llamaguard_guardrails.enforce import (
    DEFAULT_REFUSAL,
    Refusal,
    block_action,
    enforce,
    tool_refusal,
)

SAFE = Verdict(safe=True, unsafe_probability=0.02)
UNSAFE = Verdict(safe=False, categories=["S9"], category_names=["Indiscriminate Weapons"], unsafe_probability=0.97)
FAILED_CLOSED = Verdict(safe=False, unsafe_probability=1.0, error="ModelOutputError: garbage")
FAILED_OPEN = Verdict(safe=True, unsafe_probability=0.0, error="ModelOutputError: garbage")


@pytest.mark.parametrize("on_block", ["raise", "refuse"])
def test_safe_content_proceeds_and_is_reported(on_block):
    seen = []
    assert enforce(SAFE, "input", on_block=on_block, on_verdict=lambda v, s: seen.append((v, s))) is None
    assert seen == [(SAFE, "input")]


def test_fail_open_errors_proceed_but_are_reported():
    seen = []
    assert enforce(FAILED_OPEN, "output", on_block="raise", on_verdict=lambda v, s: seen.append(v.status)) is None
    assert seen == ["error"]


@pytest.mark.parametrize("verdict", [UNSAFE, FAILED_CLOSED])
def test_raise_raises_with_the_verdict_and_stage_after_reporting(verdict):
    seen = []
    with pytest.raises(UnsafeContentError) as err:
        enforce(verdict, "tool_call", on_block="raise", on_verdict=lambda v, s: seen.append(s))
    assert err.value.verdict is verdict and err.value.stage == "tool_call"
    assert seen == ["tool_call"]


def test_refuse_returns_the_refusal_text_fixed_or_computed():
    assert enforce(UNSAFE, "output", on_block="refuse") == Refusal(UNSAFE, "output", DEFAULT_REFUSAL)
    custom = enforce(UNSAFE, "output", on_block="refuse", refusal_message=lambda v, s: f"{s}: {','.join(v.categories)}")
    assert custom is not None and custom.text == "output: S9"
    tool = enforce(UNSAFE, "tool_call", on_block="refuse", refusal_message=tool_refusal)
    assert tool is not None and tool.text.startswith("Blocked by Llama Guard: the tool call was unsafe: S9")
    assert "The tool was not run." in tool.text
    assert "The result was withheld." in tool_refusal(UNSAFE, "tool_result")


def test_a_failing_audit_hook_is_logged_and_never_decides(caplog):
    def broken(verdict, stage):
        raise RuntimeError("audit store down")

    with caplog.at_level(logging.ERROR, logger="llamaguard_guardrails"):
        assert enforce(SAFE, "input", on_verdict=broken) is None
        with pytest.raises(UnsafeContentError):
            enforce(UNSAFE, "input", on_verdict=broken)
    assert sum("on_verdict hook failed" in r.getMessage() for r in caplog.records) == 2


def test_an_unknown_action_blocks_with_a_typed_error_never_passes():
    with pytest.raises(InvalidPolicyError, match="'raise' or 'refuse'"):
        enforce(UNSAFE, "input", on_block="ignore")  # type: ignore[arg-type]
    with pytest.raises(InvalidPolicyError, match="'raise' or 'refuse'"):
        block_action("ignore")
