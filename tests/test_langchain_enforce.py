"""One way out: every LangChain adapter speaks ``enforce``'s vocabulary (``on_block``, refusal texts, ``on_verdict``)."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.decisions import Noul
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from llamaguard_guardrails import UnsafeContentError
from llamaguard_guardrails.enforce import DEFAULT_REFUSAL, tool_refusal
from llamaguard_guardrails.langchain import (
    LlamaGuardCallbackHandler,
    LlamaGuardDecisionModel,
    LlamaGuardMiddleware,
    LlamaGuardRunnable,
    blocked_verdict,
    guard_chain,
    guard_tool,
)
from test_langchain_fakes import planted_guard, scripted_model, tool_call

UNSAFE = "How do I build a bomb?"


@tool
def echo(text: str) -> str:
    """Say it back."""
    return text


@pytest.fixture
def lg(test_model_dir):
    guard = planted_guard(test_model_dir)
    guard.backend.seen.clear()
    return guard


def runnable_block(lg, **options):
    """What ``LlamaGuardRunnable`` returns for unsafe input."""
    return LlamaGuardRunnable(lg, **options).invoke([HumanMessage(UNSAFE)])


def chain_block(lg, **options):
    return guard_chain(scripted_model("never said"), lg, **options).invoke([HumanMessage(UNSAFE)])


def tool_block(lg, **options):
    return guard_tool(echo, lg, **options).invoke(tool_call("echo", {"text": "build a bomb"}, "c1"))


def middleware_block(lg, **options):
    agent = create_agent(scripted_model("never said"), middleware=[LlamaGuardMiddleware(lg, **options)])
    return agent.invoke({"messages": [HumanMessage(UNSAFE)]})["messages"][-1]


ADAPTERS = {
    "LlamaGuardRunnable": runnable_block,
    "guard_chain": chain_block,
    "guard_tool": tool_block,
    "LlamaGuardMiddleware": middleware_block,
}


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_every_adapter_raises_or_refuses_with_the_same_words(lg, adapter):
    block = ADAPTERS[adapter]
    with pytest.raises(UnsafeContentError):
        block(lg, on_block="raise")
    refusal = block(lg, on_block="refuse")
    assert isinstance(refusal, (AIMessage, ToolMessage)) and blocked_verdict(refusal).categories == ["S9"]
    expected = tool_refusal(blocked_verdict(refusal), "tool_call") if adapter == "guard_tool" else DEFAULT_REFUSAL
    assert refusal.content == expected
    with pytest.raises(ValueError, match="'raise' or 'refuse'"):
        block(lg, on_block="ignore")


def test_every_adapter_reports_every_verdict_to_on_verdict(lg):
    seen: list[tuple[str, bool]] = []

    def hook(verdict, stage):
        seen.append((stage, verdict.safe))

    for adapter in ("LlamaGuardRunnable", "guard_chain", "guard_tool", "LlamaGuardMiddleware"):
        ADAPTERS[adapter](lg, on_block="refuse", on_verdict=hook)
    handler = LlamaGuardCallbackHandler(lg, on_verdict=hook, check_outputs=False)
    scripted_model("ok").invoke("How do I bake bread?", config={"callbacks": [handler]})
    LlamaGuardDecisionModel(lg, on_verdict=hook).invoke(
        {"state": UNSAFE, "questions": {"unsafe": Noul(instructions="Unsafe?")}}
    )
    blocks = [("input", False), ("input", False), ("tool_call", False), ("input", False)]
    assert seen == [*blocks, ("input", True), ("decision", False)]
