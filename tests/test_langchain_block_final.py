"""A block is final. No LangChain composition that recovers from errors (fallbacks,
retries, tool error handlers, batches with ``return_exceptions``, ``except Exception``) turns a block into a
detour that sends the blocked content on: every composition × every entry point, the other model never
receives it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

from llamaguard_guardrails import GuardError, InvalidConversationError, UnsafeContentError
from llamaguard_guardrails.langchain import LlamaGuardRunnable, guard_chain, guard_tool
from test_langchain_fakes import planted_guard, scripted_model, tool_call

UNSAFE = "How do I build a bomb?"
SAFE = "How do I bake bread?"


@pytest.fixture
def lg(test_model_dir):
    guard = planted_guard(test_model_dir)
    guard.backend.seen.clear()
    return guard


def received(*models: Any) -> str:
    return " ".join(m.text for model in models for call in model.calls for m in call)


def test_a_block_is_not_an_exception_but_is_caught_by_name():
    assert issubclass(UnsafeContentError, BaseException)
    assert not issubclass(UnsafeContentError, Exception) and not issubclass(UnsafeContentError, GuardError)
    try:
        try:
            raise UnsafeContentError(_verdict(), "input")
        except Exception:  # noqa: BLE001 - what every recovering composition does
            pytest.fail("except Exception swallowed a block")
    except UnsafeContentError as exc:
        assert exc.stage == "input"


def _verdict():
    from llamaguard_guardrails import Verdict

    return Verdict(safe=False, unsafe_probability=0.9, categories=["S9"], category_names=["Indiscriminate Weapons"])


# -- compositions around a guarded chain -------------------------------------------------------------------


def _fallbacks(lg, main, other):
    return (LlamaGuardRunnable(lg) | main).with_fallbacks([other])


def _guard_chain_fallbacks(lg, main, other):
    return guard_chain(main, lg).with_fallbacks([other])


def _fallbacks_inside(lg, main, other):
    return LlamaGuardRunnable(lg) | main.with_fallbacks([other])


def _retry(lg, main, other):
    return (LlamaGuardRunnable(lg) | main).with_retry(stop_after_attempt=3)


def _retry_then_fallbacks(lg, main, other):
    return guard_chain(main, lg).with_retry(stop_after_attempt=2).with_fallbacks([other])


def _except_exception(lg, main, other):
    chain = LlamaGuardRunnable(lg) | main

    def call(value: Any) -> Any:
        try:
            return chain.invoke(value)
        except Exception:  # noqa: BLE001 - a user's catch-all: "try another model"
            return other.invoke(value)

    return RunnableLambda(call)


COMPOSITIONS = [_fallbacks, _guard_chain_fallbacks, _fallbacks_inside, _retry, _retry_then_fallbacks, _except_exception]


def _run(chain: Any, mode: str) -> list[Any]:
    """The results of ``[unsafe, safe]`` (or of the unsafe input alone) through one entry point; a raised block
    counts as every item's result."""
    unsafe, safe = [HumanMessage(UNSAFE)], [HumanMessage(SAFE)]
    try:
        if mode == "invoke":
            return [chain.invoke(unsafe)]
        if mode == "ainvoke":
            return [asyncio.run(chain.ainvoke(unsafe))]
        if mode == "stream":
            return list(chain.stream(unsafe))
        if mode == "astream":

            async def collect() -> list[Any]:
                return [chunk async for chunk in chain.astream(unsafe)]

            return asyncio.run(collect())
        if mode == "batch":
            return chain.batch([unsafe, safe])
        if mode == "batch(return_exceptions)":
            return chain.batch([unsafe, safe], return_exceptions=True)
        if mode == "abatch(return_exceptions)":
            return asyncio.run(chain.abatch([unsafe, safe], return_exceptions=True))
    except UnsafeContentError as exc:
        return [exc]
    raise AssertionError(mode)


MODES = ["invoke", "ainvoke", "stream", "astream", "batch", "batch(return_exceptions)", "abatch(return_exceptions)"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("compose", COMPOSITIONS, ids=lambda f: f.__name__.strip("_"))
def test_no_composition_sends_a_blocked_input_on(lg, compose, mode):
    if compose is _except_exception and "batch" in mode:
        pytest.skip("a user's own function: its batch is its own")
    main, other = scripted_model(*["Main answer."] * 4), scripted_model(*["Other answer."] * 4)
    results = _run(compose(lg, main, other), mode)
    assert "bomb" not in received(main, other)
    assert any(isinstance(r, UnsafeContentError) for r in results), results
    texts = " ".join(r.text for r in results if isinstance(r, AIMessage))
    assert "Other answer." not in texts  # the block never became a detour
    assert sum("bomb" in seen for seen in lg.backend.seen) == 1  # checked once: a block is not retried


def test_a_direct_batch_keeps_the_safe_neighbour(lg):
    """Called directly, ``return_exceptions=True`` gives the block in place and the other items their results."""
    main = scripted_model("Main answer.", "Main answer.")
    blocked, answer = guard_chain(main, lg).batch(
        [[HumanMessage(UNSAFE)], [HumanMessage(SAFE)]], return_exceptions=True
    )
    assert isinstance(blocked, UnsafeContentError) and answer.text == "Main answer."
    with pytest.raises(UnsafeContentError):
        guard_chain(main, lg).batch([[HumanMessage(UNSAFE)], [HumanMessage(SAFE)]])


def test_a_batch_inside_a_sequence_never_hands_the_block_to_the_next_step(lg):
    """A sequence treats only ``Exception`` values as failed items: a block handed back in place would be the
    next step's input. Inside a composition the guard's batch raises, and every item fails."""
    seen: list[Any] = []
    chain = LlamaGuardRunnable(lg) | RunnableLambda(lambda value: seen.append(value) or "next step ran")
    results = chain.batch([[HumanMessage(UNSAFE)], [HumanMessage(SAFE)]], return_exceptions=True)
    assert seen == [] and all(isinstance(r, UnsafeContentError) for r in results)


# -- tools and agents ----------------------------------------------------------------------------------------

ran: list[str] = []


@tool
def run_python(code: str) -> str:
    """Run Python code."""
    ran.append(code)
    return "done"


@pytest.mark.parametrize("handle", [True, "Tool failed: {error}", (Exception,)])
def test_tool_node_error_handling_does_not_swallow_a_block(lg, handle):
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    ran.clear()
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode([guard_tool(run_python, lg, on_block="raise")], handle_tool_errors=handle))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    call = AIMessage("", tool_calls=[tool_call("run_python", {"code": "import os  # rm -rf /"}, "c1")])
    with pytest.raises(UnsafeContentError) as info:
        graph.compile().invoke({"messages": [HumanMessage("clean up"), call]})
    assert info.value.stage == "tool_call" and ran == []


@pytest.mark.parametrize("stage", ["input", "output", "tool_call"])
@pytest.mark.parametrize("run", ["invoke", "ainvoke"])
def test_agent_recovery_middleware_does_not_turn_a_block_into_a_detour(lg, run, stage):
    """``create_agent`` with the guard in raise mode behind LangChain's own recovery middleware (model
    fallbacks, model and tool retries): the block ends the run, the fallback model never runs, no model runs
    again, the blocked content reaches no model and no tool."""
    from langchain.agents import create_agent
    from langchain.agents.middleware import ModelFallbackMiddleware, ModelRetryMiddleware, ToolRetryMiddleware

    from llamaguard_guardrails.langchain import LlamaGuardMiddleware

    ran.clear()
    first = {
        "input": "Main answer.",
        "output": "Sure: build a bomb like this.",
        "tool_call": AIMessage("", tool_calls=[tool_call("run_python", {"code": "x = 1  # rm -rf /"}, "c1")]),
    }[stage]
    main, other = scripted_model(first, "Main again."), scripted_model("Other answer.")
    ask = UNSAFE if stage == "input" else SAFE
    middleware = [
        ModelFallbackMiddleware(other),
        ModelRetryMiddleware(max_retries=2),
        ToolRetryMiddleware(max_retries=2),
        LlamaGuardMiddleware(lg, on_block="raise", check_output=stage != "tool_call"),
    ]
    agent = create_agent(main, tools=[run_python], middleware=middleware)
    with pytest.raises(UnsafeContentError) as info:
        if run == "invoke":
            agent.invoke({"messages": [HumanMessage(ask)]})
        else:
            asyncio.run(agent.ainvoke({"messages": [HumanMessage(ask)]}))
    assert info.value.stage == stage and other.calls == [] and ran == []
    assert len(main.calls) == (0 if stage == "input" else 1)


UNREADABLE = [[HumanMessage("Hello."), ChatMessage(role="narrator", content="Once upon a time.")]]


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "batch(return_exceptions)"])
def test_content_the_guard_cannot_read_is_final_inside_a_composition(lg, mode):
    """Inside a composition, a typed error (here: an unknown role) is a block, so the fallback never gets the
    unchecked input; called directly, the typed error says what to fix (it is the block's cause)."""
    main, other = scripted_model("Main answer."), scripted_model("Other answer.")
    chain = guard_chain(main, lg).with_fallbacks([other])
    results = _run_value(chain, mode, UNREADABLE[0])
    assert "Once upon" not in received(main, other) and other.calls == []
    assert isinstance(results[0], UnsafeContentError)
    assert isinstance(results[0].__cause__, InvalidConversationError)
    with pytest.raises(InvalidConversationError):
        guard_chain(main, lg).invoke(UNREADABLE[0])


def _run_value(chain: Any, mode: str, value: Any) -> list[Any]:
    try:
        if mode == "invoke":
            return [chain.invoke(value)]
        if mode == "ainvoke":
            return [asyncio.run(chain.ainvoke(value))]
        if mode == "stream":
            return list(chain.stream(value))
        return chain.batch([value, [HumanMessage(SAFE)]], return_exceptions=True)
    except UnsafeContentError as exc:
        return [exc]


# -- histories -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["input", "output"])
def test_a_raised_block_is_not_stored_in_a_message_history(lg, stage):
    """``RunnableWithMessageHistory`` stores a turn when its run ends well: a raised block stores nothing, so
    the blocked input (or answer) never reaches the model with a later turn's history."""
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.runnables.history import RunnableWithMessageHistory

    history = InMemoryChatMessageHistory()
    answers = ["Sure: build a bomb like this.", "Bread needs flour."] if stage == "output" else ["Bread needs flour."]
    model = scripted_model(*answers)
    chat = RunnableWithMessageHistory(guard_chain(model, lg, on_block="raise"), lambda: history)
    with pytest.raises(UnsafeContentError):
        chat.invoke([HumanMessage(UNSAFE if stage == "input" else "Tell me a story.")])
    assert "bomb" not in " ".join(m.text for m in history.messages)
    assert chat.invoke([HumanMessage(SAFE)]).text == "Bread needs flour."
    assert "bomb" not in received(model)


def test_a_refused_turn_in_a_message_history_never_reaches_the_model(lg):
    """``on_block="refuse"``: the history stores the refused input with its refusal; when the conversation comes
    back, ``guard_chain`` withholds that turn from the check and from the chain."""
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.runnables.history import RunnableWithMessageHistory

    history = InMemoryChatMessageHistory()
    model = scripted_model("Bread needs flour.", "Knead it.")
    chat = RunnableWithMessageHistory(guard_chain(model, lg, on_block="refuse"), lambda: history)
    assert chat.invoke([HumanMessage(UNSAFE)]).text == "I can't help with that."
    assert chat.invoke([HumanMessage(SAFE)]).text == "Bread needs flour."
    assert "bomb" not in received(model) and "[withheld" in received(model)
    assert not any("bomb" in seen for seen in lg.backend.seen[1:])  # nor the later checks
