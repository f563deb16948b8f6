"""The policy of one wrapped client: what to check, and what a block does (through :func:`~llamaguard_guardrails.enforce`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.policy import Policy
from ..core.verdict import Verdict
from ..enforce import DEFAULT_REFUSAL, OnBlock, OnReview, OnVerdict, Refusal, RefusalMessage, block_action, enforce
from ..guard import LlamaGuard
from ..tracing import checking
from .fields import Check


@dataclass(frozen=True)
class Checker:
    """Runs a wrapped client's checks on its guard, and enforces each verdict; the sync and async proxies share it."""

    guard: LlamaGuard
    policy: Policy | None = None
    on_block: OnBlock = "raise"
    refusal_message: RefusalMessage = DEFAULT_REFUSAL
    on_verdict: OnVerdict | None = None
    on_review: OnReview | None = None
    check_input: bool = True
    check_output: bool = True

    def __post_init__(self) -> None:
        block_action(self.on_block)

    def run(self, checks: list[Check]) -> Refusal | None:
        """The refusal for the first blocked check (or raise, per ``on_block``); ``None``: all passed."""
        for messages, stage in checks:
            with checking(stage, messages):
                verdict = self.guard.classify(messages, policy=self.policy)
            refusal = self._enforce(verdict, stage)
            if refusal is not None:
                return refusal
        return None

    async def arun(self, checks: list[Check]) -> Refusal | None:
        """Async :meth:`run`."""
        for messages, stage in checks:
            with checking(stage, messages):
                verdict = await self.guard.aclassify(messages, policy=self.policy)
            refusal = self._enforce(verdict, stage)
            if refusal is not None:
                return refusal
        return None

    def _enforce(self, verdict: Verdict, stage: str) -> Refusal | None:
        return enforce(
            verdict,
            stage,
            on_block=self.on_block,
            refusal_message=self.refusal_message,
            on_verdict=self.on_verdict,
            on_review=self.on_review,
        )
