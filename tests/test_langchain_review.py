"""A human decides the grey zone: a doubtful tool call pauses a real ``create_agent`` run (LangGraph interrupt in
``HumanInTheLoopMiddleware``'s shape) and approve / edit / reject resume it; a user turn never pauses."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from llamaguard_guardrails import Policy
from llamaguard_guardrails.langchain import LlamaGuardMiddleware, blocked_verdict
from llamaguard_guardrails.testing import marker_category, marker_probability, scripted_guard
from test_langchain_fakes import last_turn, scripted_model, tool_call

GREY_BODY = "Forward the customer list to my personal address [p=0.4] [cat=S7]"
SAFE_BODY = "Here is the agenda for Monday [p=0.05]"
UNSAFE_BODY = "Here is how to poison the reservoir [p=0.9] [cat=S1]"
sent: list[str] = []
threads = itertools.count()


@tool
def send_email(to: str, body: str) -> str:
    """Send an email."""
    sent.append(body)
    return f"sent to {to}"


@pytest.fixture(scope="module")
def marked(test_model_dir):
    """Probability and category from ``[p=..]`` / ``[cat=..]`` markers in the checked (last) turn only."""
    return scripted_guard(
        test_model_dir,
        lambda text: marker_category(last_turn(text)),
        probability=lambda text: marker_probability(last_turn(text)),
        cache_size=0,
    )


@pytest.fixture(autouse=True)
def _clear():
    sent.clear()


def agent_for(guard, body: str, **options):
    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("send_email", {"to": "me@example.com", "body": body}, "c1")]),
        AIMessage("Done."),
    )
    middleware = LlamaGuardMiddleware(guard, tool_call_policy=Policy(review_threshold=0.3), **options)
    agent = create_agent(model, tools=[send_email], middleware=[middleware], checkpointer=InMemorySaver())
    return agent, {"configurable": {"thread_id": f"t{next(threads)}"}}


def ask(text: str = "Email the list [p=0.01]") -> dict:
    return {"messages": [HumanMessage(text)]}


def interrupts(chunks) -> list:
    return [i for chunk in chunks if "__interrupt__" in chunk for i in chunk["__interrupt__"]]


def run(agent, value, config, asynchronous: bool) -> list[dict]:
    """The updates a (resumed) run streams, sync or async."""
    if not asynchronous:
        return list(agent.stream(value, config, stream_mode="updates"))

    async def collect():
        return [chunk async for chunk in agent.astream(value, config, stream_mode="updates")]

    return asyncio.run(collect())


def tool_message(agent, config) -> ToolMessage:
    return next(m for m in agent.get_state(config).values["messages"] if isinstance(m, ToolMessage))


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_grey_zone_tool_call_pauses_with_the_verdict_in_hitl_shape(marked, asynchronous):
    agent, config = agent_for(marked, GREY_BODY)
    (paused,) = interrupts(run(agent, ask(), config, asynchronous))
    request = paused.value
    assert request["action_requests"][0]["name"] == "send_email"
    assert request["action_requests"][0]["args"]["body"] == GREY_BODY
    assert "needs review" in request["action_requests"][0]["description"]
    assert request["review_configs"] == [
        {"action_name": "send_email", "allowed_decisions": ["approve", "edit", "reject"]}
    ]
    info = request["llamaguard"]
    assert (info["outcome"], info["categories"], info["unsafe_probability"]) == ("review", ["S7"], pytest.approx(0.4))
    assert info["tool_call_id"] == "c1" and sent == []  # nothing ran while it waits


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("decision", "expected_sent", "status"),
    [
        ({"type": "approve"}, [GREY_BODY], "success"),
        (
            {"type": "edit", "edited_action": {"name": "send_email", "args": {"to": "me@x", "body": SAFE_BODY}}},
            [SAFE_BODY],
            "success",
        ),
        (
            {"type": "edit", "edited_action": {"name": "send_email", "args": {"to": "me@x", "body": UNSAFE_BODY}}},
            [],
            "error",
        ),
        ({"type": "reject", "message": "not to a personal address"}, [], "error"),
    ],
    ids=["approve", "edit", "unsafe-edit", "reject"],
)
def test_resume_gives_the_humans_decision(marked, asynchronous, decision, expected_sent, status):
    agent, config = agent_for(marked, GREY_BODY)
    assert interrupts(run(agent, ask(), config, asynchronous))
    chunks = run(agent, Command(resume={"decisions": [decision]}), config, asynchronous)
    assert interrupts(chunks) == [] and sent == expected_sent
    message = tool_message(agent, config)
    assert message.status == status
    if decision["type"] == "reject":
        assert "rejected" in message.content and "not to a personal address" in message.content
        assert message.response_metadata["llamaguard"]["review"] == "reject"
    if expected_sent == [SAFE_BODY]:
        assert message.content.startswith("Note: a human reviewer edited this tool call")
    if status == "error" and decision["type"] == "edit":
        assert blocked_verdict(message).categories == ["S1"]  # the edit was checked again
    assert agent.get_state(config).values["messages"][-1].content == "Done."


def test_a_bare_decision_resumes_too(marked):
    agent, config = agent_for(marked, GREY_BODY)
    run(agent, ask(), config, False)
    run(agent, Command(resume={"type": "approve"}), config, False)
    assert sent == [GREY_BODY]


@pytest.mark.parametrize(
    "answer",
    [
        {"type": "maybe"},
        "yes",
        {"decisions": []},
        {"decisions": [{"type": "approve"}, {"type": "approve"}]},
        {"type": "edit", "edited_action": {"name": "delete_everything", "args": {}}},
        {"type": "edit", "edited_action": {"name": "send_email", "args": "all"}},
        {"type": "reject", "message": ["x"]},
    ],
)
def test_an_answer_the_guard_cannot_read_is_a_rejection(marked, answer):
    agent, config = agent_for(marked, GREY_BODY)
    run(agent, ask(), config, False)
    assert interrupts(run(agent, Command(resume=answer), config, False)) == [] and sent == []
    message = tool_message(agent, config)
    assert message.status == "error" and "could not be read" in message.content


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_user_turn_never_pauses(marked, asynchronous):
    agent, config = agent_for(marked, SAFE_BODY, input_policy=Policy(review_threshold=0.3))
    chunks = run(agent, ask("Tell me my neighbour's address [p=0.4] [cat=S7]"), config, asynchronous)
    assert interrupts(chunks) == [] and sent == []
    last = agent.get_state(config).values["messages"][-1]
    assert blocked_verdict(last).outcome == "review"  # held back: nobody can review a user turn mid-run


def test_a_user_turns_review_hook_decides_without_pausing(marked):
    seen = []
    agent, config = agent_for(
        marked, SAFE_BODY, input_policy=Policy(review_threshold=0.3), on_review=lambda v, s: seen.append(s) or True
    )
    chunks = run(agent, ask("Tell me my neighbour's address [p=0.4] [cat=S7]"), config, False)
    assert interrupts(chunks) == [] and seen == ["input"] and sent == [SAFE_BODY]


@pytest.mark.parametrize("body", [SAFE_BODY, "Lunch at noon? [p=0.29]"])
def test_below_the_review_threshold_nothing_pauses(marked, body):
    agent, config = agent_for(marked, body)
    assert interrupts(run(agent, ask(), config, False)) == [] and sent == [body]


def test_on_block_interrupt_sends_blocked_tool_calls_to_a_human(marked):
    # The output check cannot pause: it would refuse the whole answer before the tool call stage sees it.
    agent, config = agent_for(marked, UNSAFE_BODY, on_block="interrupt", check_output=False)
    (paused,) = interrupts(run(agent, ask(), config, False))
    assert (
        paused.value["llamaguard"]["outcome"] == "block"
        and "unsafe: S1" in paused.value["action_requests"][0]["description"]
    )
    run(agent, Command(resume={"decisions": [{"type": "approve"}]}), config, False)
    assert sent == [UNSAFE_BODY]


def test_without_interrupt_a_blocked_tool_call_is_refused_without_pausing(marked):
    agent, config = agent_for(marked, UNSAFE_BODY, check_output=False)
    assert interrupts(run(agent, ask(), config, False)) == [] and sent == []
    assert tool_message(agent, config).status == "error"


def test_two_doubtful_calls_in_one_turn_pause_together_and_resume_by_interrupt_id(marked):
    model = scripted_model(
        AIMessage(
            "",
            tool_calls=[
                tool_call("send_email", {"to": "a@x", "body": GREY_BODY}, "c1"),
                tool_call("send_email", {"to": "b@x", "body": GREY_BODY + " again"}, "c2"),
            ],
        ),
        AIMessage("Done."),
    )
    middleware = LlamaGuardMiddleware(marked, tool_call_policy=Policy(review_threshold=0.3))
    agent = create_agent(model, tools=[send_email], middleware=[middleware], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": f"t{next(threads)}"}}
    paused = interrupts(run(agent, ask(), config, False))
    assert sorted(p.value["llamaguard"]["tool_call_id"] for p in paused) == ["c1", "c2"] and sent == []
    answers = {
        p.id: {"decisions": [{"type": "approve" if p.value["llamaguard"]["tool_call_id"] == "c1" else "reject"}]}
        for p in paused
    }
    run(agent, Command(resume=answers), config, False)
    assert sent == [GREY_BODY]
    statuses = {
        m.tool_call_id: m.status for m in agent.get_state(config).values["messages"] if isinstance(m, ToolMessage)
    }
    assert statuses == {"c1": "success", "c2": "error"}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ({"type": "approve"}, [("tool_call", "review")]),
        ({"type": "reject", "message": "no"}, [("tool_call", "review")]),
        (
            {"type": "edit", "edited_action": {"name": "send_email", "args": {"to": "me@x", "body": SAFE_BODY}}},
            [("tool_call", "review"), ("tool_call", "allow")],
        ),
    ],
    ids=["approve", "reject", "edit"],
)
def test_a_paused_check_is_reported_once_though_the_resumed_run_replays_it(marked, asynchronous, decision, expected):
    """LangGraph replays the paused node on resume (the check runs again to reach the ``interrupt``): the audit hook
    sees the doubtful call's verdict once, when the run pauses, and an edited call's new verdict."""
    seen: list[tuple[str, str]] = []
    agent, config = agent_for(
        marked, GREY_BODY, on_verdict=lambda verdict, stage: seen.append((stage, verdict.outcome))
    )
    run(agent, ask(), config, asynchronous)
    assert [s for s in seen if s[0] == "tool_call"] == [("tool_call", "review")]
    run(agent, Command(resume={"decisions": [decision]}), config, asynchronous)
    assert [s for s in seen if s[0] == "tool_call"] == expected
