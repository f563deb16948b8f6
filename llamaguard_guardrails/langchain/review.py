"""A human decides the grey zone: ``LlamaGuardMiddleware`` pauses a doubtful tool call with a LangGraph ``interrupt``.

A tool call whose verdict needs review (``verdict.outcome == "review"``: the policy's ``review_threshold <= p <
threshold``, or an out-of-depth verdict under ``out_of_depth="review"``), or any blocked tool call under
``on_block="interrupt"``, pauses the run before the tool runs. The interrupt's value has the shape of
``HumanInTheLoopMiddleware``'s ``HITLRequest`` (one action request, its review config), so agent UIs built for it
work, plus the verdict under ``"llamaguard"``::

    {"action_requests": [{"name": "send_email", "args": {...}, "description": "Llama Guard: ... "}],
     "review_configs": [{"action_name": "send_email", "allowed_decisions": ["approve", "edit", "reject"]}],
     "llamaguard": {"stage": "tool_call", "tool_call_id": "c1", "outcome": "review", "verdict": {...}}}

Resume with ``Command(resume={"decisions": [decision]})`` (a ``HITLResponse``) or the bare decision:

- ``{"type": "approve"}``: the call runs as proposed (its result is still checked);
- ``{"type": "edit", "edited_action": {"name": ..., "args": {...}}}``: the edited call is checked again and runs
  unless it is unsafe (a grey-zone edit runs: a human wrote it);
- ``{"type": "reject", "message": "..."}``: the tool does not run; the model gets an error ``ToolMessage``.

Other stages never pause (a user turn, a model answer, a tool result): there a verdict in review follows
:func:`~llamaguard_guardrails.enforce.enforce` (the middleware's ``on_review`` hook, else held back).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.errors import GraphInterrupt
from langgraph.types import interrupt

from ..core.verdict import Verdict
from ..enforce import Refusal, enforce, report
from ._common import METADATA_KEY, refusal_tool_message, tool_steps
from ._steps import Call, Classify, Steps
from .convert import OpenAIMessage, tool_call_message

log = logging.getLogger("llamaguard_guardrails.langchain")

DECISIONS = ("approve", "edit", "reject")
STAGE = "tool_call"
EDIT_NOTICE = (
    "Note: a human reviewer edited this tool call before it ran. Executed instead: {name} with arguments {args}."
)


def pauses(verdict: Verdict, *, interrupt_blocks: bool) -> bool:
    """Whether a tool call with ``verdict`` waits for a human: in review, or blocked under ``on_block="interrupt"``."""
    return verdict.outcome == "review" or (interrupt_blocks and verdict.outcome == "block")


def review_request(call: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    """The interrupt's value: a ``HITLRequest`` for ``call``, with the verdict under ``"llamaguard"``."""
    description = (
        f"Llama Guard: {verdict.summary()}"
        + (f"; {'; '.join(verdict.out_of_depth)}" if verdict.out_of_depth and verdict.categories else "")
        + ". Approve, edit or reject this tool call."
    )
    return {
        "action_requests": [{"name": call["name"], "args": call.get("args", {}), "description": description}],
        "review_configs": [{"action_name": call["name"], "allowed_decisions": list(DECISIONS)}],
        METADATA_KEY: {
            "stage": STAGE,
            "tool_call_id": call.get("id"),
            "outcome": verdict.outcome,
            "categories": verdict.categories,
            "unsafe_probability": verdict.unsafe_probability,
            "verdict": verdict.model_dump(mode="json"),
        },
    }


def read_decision(answer: Any, call: dict[str, Any]) -> dict[str, Any]:
    """The human's decision from a resume value (a ``HITLResponse`` with one decision, or the decision itself).

    An answer the guard cannot read is a rejection (the tool does not run; the model is told why): a resume value
    is saved with the run, so raising would leave the call stuck on it.
    """
    problem = _problem(answer, call)
    if problem is not None:
        log.warning("unreadable review decision for tool call %s: %s; the tool is not run", call.get("id"), problem)
        return {"type": "reject", "message": f"the reviewer's answer could not be read ({problem})"}
    return answer["decisions"][0] if isinstance(answer, dict) and "decisions" in answer else answer


def _problem(answer: Any, call: dict[str, Any]) -> str | None:
    if isinstance(answer, dict) and "decisions" in answer:
        decisions = answer["decisions"]
        if not isinstance(decisions, list) or len(decisions) != 1:
            return f"a paused tool call takes exactly one decision, got {decisions!r}"
        answer = decisions[0]
    kind = answer.get("type") if isinstance(answer, dict) else None
    if kind not in DECISIONS:
        return f"a decision is {{'type': one of {list(DECISIONS)}}}, got {answer!r}"
    if kind == "edit":
        action = answer.get("edited_action")
        if not isinstance(action, dict) or not isinstance(action.get("args"), dict):
            return "an 'edit' decision needs edited_action={'name': ..., 'args': {...}}"
        if action.get("name", call["name"]) != call["name"]:
            return f"an edit may change the arguments of {call['name']!r}, not call another tool ({action['name']!r})"
    if kind == "reject" and not isinstance(answer.get("message", ""), str):
        return "a 'reject' decision's message must be text"
    return None


def rejected_message(call: dict[str, Any], decision: dict[str, Any], verdict: Verdict) -> ToolMessage:
    """What the model reads in place of a tool call a human rejected."""
    reason = decision.get("message")
    text = f"A human reviewer rejected the tool call `{call['name']}`" + (f": {reason}" if reason else "")
    return ToolMessage(
        content=f"{text}. The tool was not run. Do not retry this call unless the user asks for it.",
        tool_call_id=call.get("id") or "",
        name=call["name"],
        status="error",
        response_metadata={
            METADATA_KEY: {
                "blocked": True,
                "stage": STAGE,
                "review": "reject",
                "verdict": verdict.model_dump(mode="json"),
            }
        },
    )


def _with_notice(result: Any, call: dict[str, Any]) -> Any:
    if not isinstance(result, ToolMessage) or not isinstance(result.content, str):
        return result
    notice = EDIT_NOTICE.format(name=call["name"], args=json.dumps(call.get("args", {}), default=str))
    return result.model_copy(update={"content": f"{notice}\n\n{result.content}" if result.content else notice})


Check = Callable[[list[OpenAIMessage], str], Steps[Refusal | None]]


def reviewed_tool_steps(
    middleware: Any,
    request: Any,
    handler: Callable[..., Any],
    context: list[OpenAIMessage],
    check: Check,
    *,
    interrupt_blocks: bool,
    on_refusal: Callable[[Refusal], Any] | None = None,
) -> Steps[Any]:
    """One tool run under ``middleware``: the call checked (paused for a human when it :func:`pauses`), then run,
    then its result checked with ``check``. ``request`` is the ``ToolCallRequest``; ``context`` the conversation
    before the turn that proposed the call; ``on_refusal`` sees every refusal of the guard (call or result)."""
    call = request.tool_call
    edited = False

    def blocked(refusal: Refusal) -> ToolMessage:
        if on_refusal is not None:
            on_refusal(refusal)
        return refusal_tool_message(refusal, call.get("id") or "", call["name"])

    def classify(tool_call: dict[str, Any]) -> Classify:
        message = tool_call_message(tool_call["name"], tool_call.get("args", {}), tool_call.get("id"))
        return Classify(middleware.guard, [[*context, message]], middleware.policies[STAGE], stage=STAGE)

    if middleware.checks[STAGE]:
        (verdict,) = yield classify(call)
        approved = False
        if pauses(verdict, interrupt_blocks=interrupt_blocks):
            decision = read_decision(_pause(call, verdict, middleware.on_verdict), call)
            if decision["type"] == "reject":
                return rejected_message(call, decision, verdict)
            approved = decision["type"] == "approve"
            if decision["type"] == "edit":  # checked again: an unsafe edit is blocked, a doubtful one runs
                call = {**call, "args": decision["edited_action"]["args"]}
                request = request.override(tool_call=call)
                (verdict,) = yield classify(call)
                edited = True
        if not approved:
            refusal = enforce(
                verdict,
                STAGE,
                on_block="refuse",  # the middleware records a raise-mode block and raises when the run ends
                refusal_message=middleware.refusal_messages[STAGE],
                on_verdict=middleware.on_verdict,
                on_review=_human_wrote_it if edited else None,
            )
            if refusal is not None:
                return blocked(refusal)
    result = yield from tool_steps(
        check,
        context,
        tool_call_message(call["name"], call.get("args", {}), call.get("id")),
        Call(handler, handler, (request,)),
        call["name"],
        call.get("id"),
        blocked,
        check_call=False,
        check_result=middleware.checks["tool_result"],
    )
    return _with_notice(result, call) if edited else result


def _pause(call: dict[str, Any], verdict: Verdict, on_verdict: Any) -> Any:
    """The resume value for a paused call. The verdict is reported when the run pauses, not when the resumed run
    replays the node (the check runs again to reach the ``interrupt``, which then returns the human's answer)."""
    try:
        return interrupt(review_request(call, verdict))
    except GraphInterrupt:
        report(verdict, STAGE, on_verdict)
        raise


def _human_wrote_it(verdict: Verdict, stage: str) -> bool:
    return True


__all__ = ["DECISIONS", "pauses", "read_decision", "rejected_message", "review_request", "reviewed_tool_steps"]
