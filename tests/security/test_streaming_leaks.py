"""Streaming never leaks: no character of a blocked window reaches the consumer.

Numbers proven here: an unsafe phrase planted at 7 positions (start, middle, on window boundaries,
end) of a streamed answer, split into chunks of 7 sizes (1 character to the whole answer), through
``guard_chain`` in buffered mode and windowed mode with 4 window/overlap settings, sync and async
(560 streams, safe controls included), plus 80 random splits (hypothesis): 0 characters from the phrase on reach the
consumer, and a safe answer arrives complete and unchanged. A ``create_agent`` agent with
``LlamaGuardMiddleware`` streaming ``stream_mode="messages"`` shows 0 characters of a blocked answer
or tool result, sync and async.

The windowed guarantee covers phrases of up to ``window_overlap + 1`` characters; buffered mode
covers everything (see docs/SECURITY.md).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableGenerator
from langchain_core.tools import tool

from llamaguard_guardrails import LlamaGuard, UnsafeContentError
from llamaguard_guardrails.langchain import LlamaGuardMiddleware, LlamaGuardRunnable, guard_chain
from test_langchain_fakes import planted_rule, scripted_model, tool_call

PHRASE = "build a bomb"
FILLER = "Here is a calm and friendly story about bread, flour, water and a warm oven in the morning. " * 5
POSITIONS = [0, 1, 100, 255, 256, 320, len(FILLER)]
CHUNK_SIZES = [1, 3, 11, 12, 13, 50, 10_000]
WINDOWS = [(8, 11), (16, 16), (64, 11), (256, 64)]  # (window_size, window_overlap >= len(PHRASE) - 1)
REFUSAL = "I can't help with that."


@pytest.fixture
def lg(make_guard) -> LlamaGuard:
    """Unsafe iff the checked (last) turn contains a planted phrase such as 'build a bomb'."""
    return make_guard(planted_rule)


def planted(position: int) -> str:
    return FILLER[:position] + PHRASE + FILLER[position:]


def split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def generator(chunks: list[Any]) -> RunnableGenerator:
    """A 'model' that streams exactly ``chunks``, whatever its input."""

    def stream(_: Iterator[Any]) -> Iterator[Any]:
        yield from chunks

    async def astream(inputs: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for _ in inputs:
            pass
        for chunk in chunks:
            await asyncio.sleep(0)
            yield chunk

    return RunnableGenerator(stream, astream)


def text_of(chunk: Any) -> str:
    return chunk if isinstance(chunk, str) else chunk.content


def consume(stream: Iterator[Any]) -> tuple[str, UnsafeContentError | None]:
    received = []
    try:
        for chunk in stream:
            received.append(text_of(chunk))
    except UnsafeContentError as exc:
        return "".join(received), exc
    return "".join(received), None


async def aconsume(stream: AsyncIterator[Any]) -> tuple[str, UnsafeContentError | None]:
    received = []
    try:
        async for chunk in stream:
            received.append(text_of(chunk))
    except UnsafeContentError as exc:
        return "".join(received), exc
    return "".join(received), None


def leak(answer: str, position: int | None, received: str, error: UnsafeContentError | None) -> str | None:
    """What went wrong (None when nothing leaked and a safe answer arrived whole)."""
    if position is None:
        return None if (received, error) == (answer, None) else f"safe answer cut: {received!r} / {error}"
    if error is None or error.stage != "output":
        return "the unsafe answer was not blocked"
    if not answer.startswith(received):
        return f"released text is not a prefix of the answer: {received!r}"
    if len(received) > position:
        return f"{len(received) - position} characters from the phrase on were released"
    return None


def options(mode: str, window: tuple[int, int]) -> dict[str, Any]:
    if mode == "buffered":
        return {}
    return {"stream_mode": "windowed", "window_size": window[0], "window_overlap": window[1]}


SETTINGS = [("buffered", (0, 0))] + [("windowed", w) for w in WINDOWS]


@pytest.mark.parametrize("mode, window", SETTINGS, ids=[f"{m}-{w[0]}-{w[1]}" for m, w in SETTINGS])
def test_chain_stream_never_releases_any_part_of_a_blocked_window(lg, mode, window):
    problems = []
    for position, size in itertools.product([*POSITIONS, None], CHUNK_SIZES):
        answer = FILLER if position is None else planted(position)
        chain = guard_chain(generator(split(answer, size)), lg, **options(mode, window))
        received, error = consume(chain.stream("Tell me a story"))
        if mode == "buffered" and position is not None and received:
            problems.append((position, size, "buffered mode released text before the final check"))
        problem = leak(answer, position, received, error)
        if problem:
            problems.append((position, size, problem))
    assert problems == []


@pytest.mark.parametrize("mode, window", SETTINGS, ids=[f"{m}-{w[0]}-{w[1]}" for m, w in SETTINGS])
def test_chain_astream_never_releases_any_part_of_a_blocked_window(lg, mode, window):
    async def sweep() -> list[tuple]:
        problems = []
        for position, size in itertools.product([*POSITIONS, None], CHUNK_SIZES):
            answer = FILLER if position is None else planted(position)
            chain = guard_chain(generator(split(answer, size)), lg, **options(mode, window))
            problem = leak(answer, position, *await aconsume(chain.astream("Tell me a story")))
            if problem:
                problems.append((position, size, problem))
        return problems

    assert asyncio.run(sweep()) == []


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    position=st.integers(min_value=0, max_value=len(FILLER)),
    cuts=st.lists(st.integers(min_value=1, max_value=len(FILLER) + len(PHRASE) - 1), max_size=40),
    window=st.integers(min_value=4, max_value=300),
    extra_overlap=st.integers(min_value=0, max_value=40),
    message_chunks=st.booleans(),
)
def test_random_splits_never_leak(lg, position, cuts, window, extra_overlap, message_chunks):
    answer = planted(position)
    bounds = [0, *sorted(set(cuts)), len(answer)]
    chunks: list[Any] = [answer[a:b] for a, b in itertools.pairwise(bounds)]
    if message_chunks:
        chunks = [AIMessageChunk(content=c) for c in chunks]
    chain = guard_chain(
        generator(chunks),
        lg,
        stream_mode="windowed",
        window_size=window,
        window_overlap=len(PHRASE) - 1 + extra_overlap,
    )
    assert leak(answer, position, *consume(chain.stream("Tell me a story"))) is None


@pytest.mark.parametrize("position", [0, 256, len(FILLER)])
def test_refusal_mode_and_output_pipes_never_leak(lg, position):
    answer = planted(position)
    chunks = split(answer, 5)
    chain = guard_chain(
        generator(chunks), lg, on_block="refuse", stream_mode="windowed", window_size=16, window_overlap=16
    )
    received = [text_of(c) for c in chain.stream("Tell me a story")]
    released = "".join(received[:-1])
    assert received[-1] == REFUSAL and answer.startswith(released) and len(released) <= position
    guard_out = LlamaGuardRunnable(lg, stage="output", stream_mode="windowed", window_size=16, window_overlap=16)
    received, error = consume((generator(chunks) | guard_out).stream("x"))
    assert error is not None and answer.startswith(received) and len(received) <= position
    received, error = consume((generator(split(FILLER, 5)) | guard_out).stream("x"))
    assert (received, error) == (FILLER, None)


# -- agents -------------------------------------------------------------------------------------------


@tool
def read_page(url: str) -> str:
    """Read a web page."""
    return f"The page says: {PHRASE} with fertiliser." if "evil" in url else "The page says: bread needs flour."


def streamed_text(chunks: list[Any]) -> str:
    return " | ".join(text_of(c) if isinstance(c.content, str) else str(c.content) for c in chunks)


@pytest.mark.parametrize("position", [0, 256, len(FILLER)])
def test_agent_message_stream_never_shows_a_blocked_answer(lg, position):
    answer = planted(position)
    agent = create_agent(scripted_model(answer, FILLER), middleware=[LlamaGuardMiddleware(lg)])
    chunks = [c for c, _ in agent.stream({"messages": [HumanMessage("Tell me a story")]}, stream_mode="messages")]
    assert [text_of(c) for c in chunks] == [REFUSAL]
    chunks = [c for c, _ in agent.stream({"messages": [HumanMessage("Again")]}, stream_mode="messages")]
    assert "".join(text_of(c) for c in chunks) == FILLER  # a safe answer streams whole


@pytest.mark.parametrize("position", [0, 256, len(FILLER)])
def test_agent_async_message_stream_never_shows_a_blocked_answer(lg, position):
    async def run() -> list[Any]:
        agent = create_agent(scripted_model(planted(position)), middleware=[LlamaGuardMiddleware(lg)])
        stream = agent.astream({"messages": [HumanMessage("Tell me a story")]}, stream_mode="messages")
        return [c async for c, _ in stream]

    assert [text_of(c) for c in asyncio.run(run())] == [REFUSAL]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_agent_message_stream_never_shows_a_blocked_tool_result(lg, asynchronous):
    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("read_page", {"url": "https://evil.example"}, "c1")]),
        AIMessage("I could not use that page."),
    )
    agent = create_agent(model, tools=[read_page], middleware=[LlamaGuardMiddleware(lg)])
    request = {"messages": [HumanMessage("read it")]}
    if asynchronous:

        async def run() -> list[Any]:
            return [c async for c, _ in agent.astream(request, stream_mode="messages")]

        chunks = asyncio.run(run())
    else:
        chunks = [c for c, _ in agent.stream(request, stream_mode="messages")]
    shown = streamed_text(chunks)
    assert "bomb" not in shown and "fertiliser" not in shown
    assert "I could not use that page." in shown
