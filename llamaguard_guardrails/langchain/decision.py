"""``LlamaGuardDecisionModel``: Llama Guard as a LangChain decision model (``langchain_core.decisions``).

>>> from langchain.agents.middleware import AutoModeMiddleware            # doctest: +SKIP
>>> classifier = LlamaGuardDecisionModel(guard=guard)                     # doctest: +SKIP
>>> agent = create_agent(model, tools, middleware=[
...     AutoModeMiddleware(tools=[run_python], classifier=classifier)])    # doctest: +SKIP

Llama Guard answers one question: is the last message of a conversation unsafe under its policy?
So this model answers ``Noul`` questions (yes/no) with the guard's verdict as a probability on the
verdict's side of 0.5 (see :func:`decision_probability`): consumers such as ``AutoModeMiddleware``
block at a fixed 0.5, so a verdict that is unsafe under the policy's threshold (say p = 0.40 with
``threshold=0.3``) answers >= 0.5, and a safe one (say a high score in an excluded category)
answers < 0.5. The guard's own score is in the verdict given to ``on_verdict``. The question's
wording and criteria do not change what is checked (the policy does: pass ``policy=`` with custom
categories to check something else). ``Choice``, ``Score`` and ``Box`` questions raise
``ValueError``. A guard failure answers 1.0 under a fail-closed policy.

State is read as LangChain decision-model state: a string (one user message), messages, or a dict.
A dict with ``messages`` is that conversation; a ``tool_call`` entry (as ``AutoModeMiddleware``
sends) is checked as the assistant's proposed call, in the context of the messages before the model
turn that proposed it (a ``tool_description`` is context for LLM classifiers and is not
classified); other entries become a user message of ``name: value`` lines. Standard image blocks
in the state are classified with the text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.decisions import BaseDecisionModel, ClassifierResponse, NoulAnswer, Question, State
from langchain_core.messages import BaseMessage
from pydantic import ConfigDict, Field

from ..core.errors import InvalidConversationError
from ..core.policy import Policy
from ..core.verdict import Verdict
from ..enforce import OnVerdict, report
from ..guard import LlamaGuard
from . import _steps
from ._common import before_proposing_turn
from ._steps import Classify, Steps
from .convert import OpenAIMessage, message_to_openai, to_messages, tool_call_message

_IMAGE_TYPES = ("image", "image_url")


def decision_probability(verdict: Verdict) -> float:
    """The verdict as a ``Noul`` probability that agrees with it at 0.5.

    The score is rescaled so the policy's threshold lands on 0.5 (``[0, t)`` onto ``[0, 0.5)``,
    ``[t, 1]`` onto ``[0.5, 1]``; the identity for the default threshold 0.5). A verdict whose
    score is on the other side of its threshold (a safe verdict whose unsafe categories the policy
    excludes) answers 0.0.
    """
    p, t = verdict.unsafe_probability, verdict.threshold
    if p >= t:
        scaled = 1.0 if t >= 1.0 else 0.5 + 0.5 * (p - t) / (1.0 - t)
    else:
        scaled = 0.5 * p / t
    scaled = min(1.0, max(0.0, scaled))
    if verdict.safe:
        return scaled if scaled < 0.5 else 0.0
    return scaled if scaled >= 0.5 else 1.0


class LlamaGuardDecisionModel(BaseDecisionModel):
    """A ``BaseDecisionModel`` backed by a local Llama Guard 4: ``Noul`` answers are its verdict, at 0.5."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    guard: LlamaGuard = Field(exclude=True)
    model: str = "llama-guard-4"
    policy: Policy | None = None
    on_verdict: OnVerdict | None = Field(default=None, exclude=True)

    @property
    def _provider(self) -> str:
        return "llamaguard_guardrails"

    def __init__(self, guard: LlamaGuard | None = None, **kwargs: Any) -> None:
        if guard is not None:
            kwargs["guard"] = guard
        super().__init__(**kwargs)

    def _decide(self, state: State, questions: dict[str, Question]) -> Steps[ClassifierResponse]:
        _require_nouls(questions)
        (verdict,) = yield Classify(self.guard, [state_messages(state)], self.policy)
        report(verdict, "decision", self.on_verdict)  # the consumer decides at 0.5: this model never blocks
        return self._answers(verdict, questions)

    def _classify(self, state: State, questions: dict[str, Question]) -> ClassifierResponse:
        return _steps.run(self._decide(state, questions))

    async def _aclassify(self, state: State, questions: dict[str, Question]) -> ClassifierResponse:
        return await _steps.arun(self._decide(state, questions))

    def _answers(self, verdict: Verdict, questions: dict[str, Question]) -> ClassifierResponse:
        answers: dict[str, Any] = {
            name: NoulAnswer(type="noul", noul=decision_probability(verdict)) for name in questions
        }
        return ClassifierResponse(model=self.model, answers=answers)


def _require_nouls(questions: dict[str, Question]) -> None:
    """Reject what Llama Guard cannot answer before running the model."""
    if not questions:
        raise ValueError("the request has no questions; ask a Noul question")
    for name, question in questions.items():
        if question.type != "noul":
            raise ValueError(
                f"question {name!r} is a {question.type!r} question; LlamaGuardDecisionModel answers only "
                "Noul (yes/no) questions, with the probability that the state is unsafe"
            )


def state_messages(state: Any) -> list[OpenAIMessage]:
    """Decision-model state as the OpenAI-format conversation Llama Guard checks."""
    if isinstance(state, Mapping):
        if state.get("type") in _IMAGE_TYPES:
            return to_messages([{"role": "user", "content": [state]}])
        if "tool_call" in state:
            return _tool_call_state(state)
        if "messages" in state:
            messages = list(state["messages"])
            rest = {k: v for k, v in state.items() if k != "messages"}
            return to_messages(messages) + (to_messages(rest) if rest else [])
        return to_messages(state)
    if isinstance(state, Sequence) and not isinstance(state, str) and state:
        if all(isinstance(p, Mapping) and p.get("type") in ("text", *_IMAGE_TYPES) for p in state):
            return to_messages([{"role": "user", "content": list(state)}])
    if isinstance(state, (str, BaseMessage, Sequence)):
        return to_messages(state)
    raise InvalidConversationError(f"cannot check decision state of type {type(state).__name__}")


def _tool_call_state(state: Mapping[str, Any]) -> list[OpenAIMessage]:
    call = state["tool_call"]
    if not isinstance(call, Mapping) or not call.get("name"):
        raise InvalidConversationError("state['tool_call'] must be a dict with a 'name' and 'args'")
    messages = before_proposing_turn(list(state.get("messages") or []), call.get("id"))
    context = [message_to_openai(m) if isinstance(m, BaseMessage) else m for m in messages]
    context = to_messages(context) if context else []
    return context + [tool_call_message(call["name"], call.get("args", {}), call.get("id"))]
