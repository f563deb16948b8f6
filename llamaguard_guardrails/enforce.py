"""One way out: every adapter turns a :class:`Verdict` into its action here.

Data flows one way: framework objects -> core messages -> prompt ids -> the model -> a ``Verdict`` ->
:func:`enforce` -> the framework's action. The vocabulary is the same in every adapter:

- ``on_block="raise"``: :class:`UnsafeContentError` (``.verdict``, ``.stage``) is raised;
- ``on_block="refuse"``: :func:`enforce` returns a :class:`Refusal`, which the adapter puts in place of the
  blocked content in its own shape (an ``AIMessage``, an error ``ToolMessage``, a chat completion with
  ``finish_reason="content_filter"``, a ``SafetyViolation`` ...).

A verdict that needs a human (``verdict.outcome == "review"``: the policy's grey zone) goes to ``on_review(verdict,
stage)``, the hook of adapters with no graph to pause: ``True`` lets the content proceed; anything else, a failing
hook or no hook blocks it as above, with :class:`ReviewRequired` (an :class:`UnsafeContentError`) or a
:class:`Refusal` whose ``review`` is true. Adapters that can pause (``LlamaGuardMiddleware``) ask a human instead.

Every verdict, blocked or not, first goes to the one audit hook, ``on_verdict(verdict, stage)``; a failing hook is
logged and never decides. Content proceeds only when ``verdict.outcome == "allow"`` (or a review hook approves
it); a guard error allows only under ``fail_mode="open"`` (the core logs that at ERROR).

>>> from llamaguard_guardrails import Verdict
>>> enforce(Verdict(safe=True, unsafe_probability=0.01), "input", on_block="refuse") is None
True
>>> enforce(Verdict(safe=False, unsafe_probability=0.9), "output", on_block="refuse").text
"I can't help with that."
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .core.errors import InvalidPolicyError, ReviewRequired, UnsafeContentError
from .core.verdict import Verdict

log = logging.getLogger("llamaguard_guardrails")

OnBlock = Literal["raise", "refuse"]
"""What a block does: raise :class:`UnsafeContentError`, or put a refusal in place of the content."""
Stage = Literal["input", "output", "tool_call", "tool_result", "decision"]
"""Which check produced a verdict: user input, model output, a tool call, a tool result, an agent decision."""
OnVerdict = Callable[[Verdict, str], Any]
"""The audit hook: called with every verdict and the stage that produced it (logs, metrics)."""
OnReview = Callable[[Verdict, str], bool]
"""The human-review hook: called with a verdict that needs review and its stage; ``True`` lets the content proceed."""
RefusalMessage = str | Callable[[Verdict, str], str]
"""The text that replaces blocked content: a string, or ``f(verdict, stage) -> str``."""

ON_BLOCK_VALUES: tuple[OnBlock, ...] = ("raise", "refuse")
DEFAULT_REFUSAL = "I can't help with that."
"""What a user sees in place of blocked input or output."""


def tool_refusal(verdict: Verdict, stage: str) -> str:
    """What an agent's model reads in place of a blocked tool call (not run) or tool result (withheld)."""
    if stage == "tool_call":
        return f"Blocked by Llama Guard: the tool call was {verdict.summary()}. The tool was not run."
    return f"Blocked by Llama Guard: the tool result was {verdict.summary()}. The result was withheld."


def block_action(on_block: str) -> OnBlock:
    """Check an ``on_block`` option: the one place that does (adapters call it when they are built)."""
    if on_block in ON_BLOCK_VALUES:
        return on_block  # type: ignore[return-value]
    raise InvalidPolicyError(f"on_block must be 'raise' or 'refuse', got {on_block!r}")


def report(verdict: Verdict, stage: str, on_verdict: OnVerdict | None) -> Verdict:
    """Give ``verdict`` to the audit hook; a failing hook is logged, never fatal, never decides."""
    if on_verdict is not None:
        try:
            on_verdict(verdict, stage)
        except Exception:  # an audit hook must not decide the outcome
            log.exception("on_verdict hook failed")
    return verdict


def refusal_text(message: RefusalMessage, verdict: Verdict, stage: str) -> str:
    """The refusal's text: ``message`` itself, or ``message(verdict, stage)``."""
    return message(verdict, stage) if callable(message) else message


@dataclass(frozen=True)
class Refusal:
    """What replaces blocked content under ``on_block="refuse"``: the adapter shapes it for its framework."""

    verdict: Verdict
    stage: str
    text: str

    @property
    def review(self) -> bool:
        """True when the content waits for a human (in the grey zone, not approved) rather than being unsafe."""
        return self.verdict.outcome == "review"


def approved(on_review: OnReview | None, verdict: Verdict, stage: str) -> bool:
    """Whether the review hook lets ``verdict`` proceed: only an explicit ``True`` does; a failing hook does not."""
    if on_review is None:
        return False
    try:
        return on_review(verdict, stage) is True
    except Exception:  # a failing reviewer approves nothing
        log.exception("on_review hook failed: the content is held back")
        return False


def enforce(
    verdict: Verdict,
    stage: str,
    *,
    on_block: OnBlock = "raise",
    refusal_message: RefusalMessage = DEFAULT_REFUSAL,
    on_verdict: OnVerdict | None = None,
    on_review: OnReview | None = None,
) -> Refusal | None:
    """Report ``verdict``, then ``None`` when the content may proceed (allowed, or in review and approved by
    ``on_review``); otherwise raise or return the refusal."""
    report(verdict, stage, on_verdict)
    outcome = verdict.outcome
    if outcome == "allow" or (outcome == "review" and approved(on_review, verdict, stage)):
        return None
    if block_action(on_block) == "raise":
        raise (ReviewRequired if outcome == "review" else UnsafeContentError)(verdict, stage)
    return Refusal(verdict, stage, refusal_text(refusal_message, verdict, stage))


__all__ = [
    "DEFAULT_REFUSAL",
    "ON_BLOCK_VALUES",
    "OnBlock",
    "OnReview",
    "OnVerdict",
    "Refusal",
    "RefusalMessage",
    "ReviewRequired",
    "Stage",
    "approved",
    "block_action",
    "enforce",
    "refusal_text",
    "report",
    "tool_refusal",
]
