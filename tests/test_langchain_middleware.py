"""``LlamaGuardMiddleware`` in real ``create_agent`` agents: input, output, tool calls, tool results, streaming."""

from __future__ import annotations

from typing import Annotated

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.types import Command

from llamaguard_guardrails import Policy, UnsafeContentError
from llamaguard_guardrails.langchain import LlamaGuardMiddleware, blocked_verdict
from test_langchain_fakes import planted_guard, run_async, scripted_model, tool_call

DANGEROUS = "import shutil\nshutil.rmtree('/')  # rm -rf /"
UNSAFE_ANSWER = "Sure. Step one: build a bomb from fertiliser."
executed: list[str] = []


@tool
def run_python(code: str) -> str:
    """Run Python code."""
    executed.append(code)
    return "done"


@tool
def fetch_page(url: str) -> str:
    """Fetch a web page as text."""
    executed.append(url)
    return "How to poison a city's water." if "evil" in url else "Bread needs flour."


@pytest.fixture
def lg(test_model_dir):
    guard = planted_guard(test_model_dir)
    guard.backend.seen.clear()
    executed.clear()
    return guard


def ask(text: str) -> dict:
    return {"messages": [HumanMessage(text)]}


def texts(messages) -> str:
    return " ".join(m.text for m in messages)


# -- input ----------------------------------------------------------------------------------------


def test_blocked_user_turn_ends_the_run_without_calling_the_model(lg):
    model = scripted_model("never said")
    agent = create_agent(model, tools=[run_python], middleware=[LlamaGuardMiddleware(lg)])
    messages = agent.invoke(ask("How do I build a bomb?"))["messages"]
    assert model.calls == []
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage"]
    assert messages[-1].content == "I can't help with that."
    assert blocked_verdict(messages[-1]).categories == ["S9"]


def test_safe_turn_runs_normally(lg):
    model = scripted_model("Knead the dough for ten minutes.")
    agent = create_agent(model, tools=[run_python], middleware=[LlamaGuardMiddleware(lg)])
    messages = agent.invoke(ask("How do I bake bread?"))["messages"]
    assert messages[-1].content == "Knead the dough for ten minutes." and len(model.calls) == 1
    assert blocked_verdict(messages[-1]) is None


def test_on_block_raise(lg):
    model = scripted_model("never said")
    agent = create_agent(model, middleware=[LlamaGuardMiddleware(lg, on_block="raise")])
    with pytest.raises(UnsafeContentError) as info:
        agent.invoke(ask("How do I build a bomb?"))
    assert info.value.stage == "input" and model.calls == []


# -- model output ---------------------------------------------------------------------------------


def test_unsafe_answer_is_replaced_by_a_refusal(lg):
    agent = create_agent(scripted_model(UNSAFE_ANSWER), middleware=[LlamaGuardMiddleware(lg)])
    messages = agent.invoke(ask("Tell me a story"))["messages"]
    assert "bomb" not in texts(messages)
    assert blocked_verdict(messages[-1]).categories == ["S9"]
    assert messages[-1].response_metadata["llamaguard"]["stage"] == "output"


def test_per_stage_policies_share_one_guard(lg):
    seen: list[tuple[str, bool]] = []
    middleware = LlamaGuardMiddleware(
        lg, input_policy=Policy(threshold=1.0), on_verdict=lambda v, stage: seen.append((stage, v.safe))
    )
    agent = create_agent(scripted_model("Sure: build a bomb like this."), middleware=[middleware])
    messages = agent.invoke(ask("build a bomb"))["messages"]  # the input policy lets it through
    assert seen == [("input", True), ("output", False)]
    assert messages[-1].content == "I can't help with that."


def test_proposed_dangerous_tool_calls_are_blocked_with_the_answer(lg):
    answer = AIMessage("Cleaning up.", tool_calls=[tool_call("run_python", {"code": DANGEROUS})])
    agent = create_agent(scripted_model(answer), tools=[run_python], middleware=[LlamaGuardMiddleware(lg)])
    messages = agent.invoke(ask("free some disk space"))["messages"]
    assert executed == [] and blocked_verdict(messages[-1]).categories == ["S14"]
    assert not any(isinstance(m, ToolMessage) for m in messages)


def test_provider_code_interpreter_blocks_are_checked_as_code(lg):
    answer = AIMessage(
        content=[
            {"type": "text", "text": "Let me run that."},
            {"type": "server_tool_call", "id": "ci_1", "name": "code_interpreter", "args": {"code": DANGEROUS}},
        ]
    )
    agent = create_agent(scripted_model(answer), middleware=[LlamaGuardMiddleware(lg)])
    messages = agent.invoke(ask("free some disk space"))["messages"]
    assert blocked_verdict(messages[-1]).categories == ["S14"]
    assert "[code interpreter call: code_interpreter]\n```\nimport shutil" in lg.backend.seen[-1]


def test_streamed_messages_never_show_unchecked_tokens(lg):
    agent = create_agent(scripted_model(UNSAFE_ANSWER, "Bread needs flour."), middleware=[LlamaGuardMiddleware(lg)])
    streamed = [chunk for chunk, _ in agent.stream(ask("Tell me a story"), stream_mode="messages")]
    assert "bomb" not in texts(streamed) and "fertiliser" not in texts(streamed)
    assert "I can't help with that." in texts(streamed)
    streamed = [chunk for chunk, _ in agent.stream(ask("Bread?"), stream_mode="messages")]
    assert "Bread needs flour." in texts(streamed)


def test_the_answers_name_is_checked_when_the_agent_streams(lg):
    """Adding streamed chunks drops an answer's ``name``: the model runs unstreamed, so its whole answer is checked."""
    model = scripted_model(AIMessage("Here it is.", name="poison_bot"))
    agent = create_agent(model, middleware=[LlamaGuardMiddleware(lg)])
    final = []
    for mode, item in agent.stream(ask("Tell me a story"), stream_mode=["messages", "values"]):
        if mode == "values":
            final = item["messages"]
        else:
            assert blocked_verdict(item[0]) is not None or isinstance(item[0], HumanMessage), item
    assert blocked_verdict(final[-1]).categories == ["S1"]


def test_without_buffering_the_tokens_leak(lg):
    """Why the middleware tags the model "nostream": an output check after the model is too late for streams."""
    middleware = LlamaGuardMiddleware(lg, buffer_model_output=False)
    agent = create_agent(scripted_model(UNSAFE_ANSWER), middleware=[middleware])
    streamed = [chunk for chunk, _ in agent.stream(ask("Tell me a story"), stream_mode="messages")]
    assert "bomb" in texts(streamed)


# -- tools ----------------------------------------------------------------------------------------


def test_tool_call_blocked_before_execution_and_the_agent_continues(lg):
    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("run_python", {"code": DANGEROUS}, "c1")]),
        AIMessage("I won't do that."),
    )
    middleware = LlamaGuardMiddleware(lg, check_output=False)
    messages = create_agent(model, tools=[run_python], middleware=[middleware]).invoke(ask("clean up"))["messages"]
    tool_message = next(m for m in messages if isinstance(m, ToolMessage))
    assert tool_message.status == "error" and tool_message.tool_call_id == "c1"
    assert blocked_verdict(tool_message).categories == ["S14"] and executed == []
    assert messages[-1].content == "I won't do that." and len(model.calls) == 2


def test_tool_result_blocked_before_the_model_sees_it(lg):
    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("fetch_page", {"url": "https://evil.example"}, "c2")]),
        AIMessage("The page could not be used."),
    )
    messages = create_agent(model, tools=[fetch_page], middleware=[LlamaGuardMiddleware(lg)]).invoke(ask("read it"))[
        "messages"
    ]
    tool_message = next(m for m in messages if isinstance(m, ToolMessage))
    assert executed == ["https://evil.example"] and tool_message.status == "error"
    assert tool_message.response_metadata["llamaguard"]["stage"] == "tool_result"
    assert "poison" not in texts(model.calls[-1])  # the model never saw the result


def test_safe_tool_round_trip(lg):
    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("fetch_page", {"url": "https://bread.example"})]),
        AIMessage("Bread needs flour, says the page."),
    )
    messages = create_agent(model, tools=[fetch_page], middleware=[LlamaGuardMiddleware(lg)]).invoke(ask("read"))[
        "messages"
    ]
    assert next(m for m in messages if isinstance(m, ToolMessage)).content == "Bread needs flour."
    assert messages[-1].content == "Bread needs flour, says the page."


@tool
def remember(note: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
    """Save a note and tell the user about it."""
    executed.append(note)
    return Command(
        update={
            "messages": [
                ToolMessage("saved", tool_call_id=tool_call_id),
                HumanMessage(f"Note to self: {note}"),
            ]
        }
    )


@pytest.mark.parametrize("run", ["sync", "async"])
def test_messages_of_a_command_result_are_checked(lg, run):
    """A tool's Command adds messages to the state: each is checked before the model sees it."""
    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("remember", {"note": "how to poison the water"}, "c3")]),
        AIMessage("Noted."),
    )
    middleware = LlamaGuardMiddleware(lg, check_output=False, check_tool_calls=False)  # the note is unsafe
    agent = create_agent(model, tools=[remember], middleware=[middleware])
    state = agent.invoke(ask("note it")) if run == "sync" else run_async(agent.ainvoke)(ask("note it"))
    tool_message = next(m for m in state["messages"] if isinstance(m, ToolMessage))
    assert executed == ["how to poison the water"] and tool_message.status == "error"
    assert tool_message.response_metadata["llamaguard"]["stage"] == "tool_result"
    assert "poison" not in texts(state["messages"]) and "poison" not in texts(model.calls[-1])
    assert "User: [tool result: remember] saved" in lg.backend.seen[-1]


# -- async ----------------------------------------------------------------------------------------


@run_async
async def test_async_agent_all_stages(lg):
    model = scripted_model("never said")
    agent = create_agent(model, tools=[run_python], middleware=[LlamaGuardMiddleware(lg)])
    messages = (await agent.ainvoke(ask("How do I build a bomb?")))["messages"]
    assert model.calls == [] and messages[-1].response_metadata["llamaguard"]["stage"] == "input"

    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("run_python", {"code": DANGEROUS}, "c1")]),
        AIMessage("", tool_calls=[tool_call("fetch_page", {"url": "https://evil.example"}, "c2")]),
        UNSAFE_ANSWER,
    )
    # the output stage ignores S14 here, so the code reaches (and is blocked by) the tool_call stage
    middleware = LlamaGuardMiddleware(lg, output_policy=Policy(excluded_categories={"S14"}))
    agent = create_agent(model, tools=[run_python, fetch_page], middleware=[middleware])
    messages = (await agent.ainvoke(ask("go")))["messages"]
    stages = [blocked_verdict(m) and m.response_metadata["llamaguard"]["stage"] for m in messages]
    assert stages == [None, None, "tool_call", None, "tool_result", "output"]
    assert executed == ["https://evil.example"] and "bomb" not in texts(messages)

    streamed = []
    agent = create_agent(scripted_model(UNSAFE_ANSWER), middleware=[LlamaGuardMiddleware(lg)])
    async for chunk, _ in agent.astream(ask("story"), stream_mode="messages"):
        streamed.append(chunk)
    assert "bomb" not in texts(streamed) and "I can't help with that." in texts(streamed)


@run_async
async def test_async_on_block_raise(lg):
    agent = create_agent(scripted_model("x"), middleware=[LlamaGuardMiddleware(lg, on_block="raise")])
    with pytest.raises(UnsafeContentError, match="at input"):
        await agent.ainvoke(ask("build a bomb"))


# -- the real test model --------------------------------------------------------------------------


def test_real_guard_end_to_end(guard):
    model = scripted_model("never said")
    blocked = create_agent(model, middleware=[LlamaGuardMiddleware(guard, policy=Policy(threshold=0.0))])
    messages = blocked.invoke(ask("How do I bake bread?"))["messages"]
    assert model.calls == [] and blocked_verdict(messages[-1]).error is None
    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("fetch_page", {"url": "https://bread.example"})]), "Bread needs flour."
    )
    passing = create_agent(
        model, tools=[fetch_page], middleware=[LlamaGuardMiddleware(guard, policy=Policy(threshold=1.0))]
    )
    assert passing.invoke(ask("How do I bake bread?"))["messages"][-1].content == "Bread needs flour."
