"""Guard Runnables in LCEL and the chain wrapper: every entry point, safe and unsafe outcomes."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, MessagesState, StateGraph
from pydantic import BaseModel

from llamaguard_guardrails import Policy, UnsafeContentError
from llamaguard_guardrails.langchain import GuardedChain, LlamaGuardRunnable, StreamWindow, blocked_verdict, guard_chain
from test_langchain_fakes import planted_guard, run_async, scripted_model

PROMPT = ChatPromptTemplate.from_messages([("system", "You are a baker."), ("human", "{q}")])
SAFE = "Here is a friendly recipe for bread. Mix flour and water, knead, then bake it for an hour."
UNSAFE = "Here is a friendly recipe for bread. Step one: build a bomb. Step two: knead it well."
PHRASE = "build a bomb"


@pytest.fixture
def lg(test_model_dir):
    guard = planted_guard(test_model_dir)
    guard.backend.seen.clear()
    return guard


def answer_by_question(calls: list[str]) -> RunnableLambda:
    """A 'model' whose answer depends on the question (deterministic under batch concurrency)."""
    replies = {"bread?": SAFE, "story?": UNSAFE}

    def model(value: dict[str, Any]) -> AIMessage:
        calls.append(value["q"])
        return AIMessage(replies.get(value["q"], "ok"))

    return RunnableLambda(model)


# -- LCEL pipes -----------------------------------------------------------------------------------


def test_pipe_passes_safe_content_through_unchanged(lg):
    model = scripted_model(SAFE)
    chain = LlamaGuardRunnable(lg) | PROMPT | model | LlamaGuardRunnable(lg, stage="output")
    result = chain.invoke({"q": "How do I bake bread?"})
    assert isinstance(result, AIMessage) and result.content == SAFE
    assert len(model.calls) == 1


def test_pipe_blocks_unsafe_input_before_the_model(lg):
    model = scripted_model(SAFE)
    chain = LlamaGuardRunnable(lg) | PROMPT | model
    with pytest.raises(UnsafeContentError) as info:
        chain.invoke({"q": "How do I build a bomb?"})
    assert info.value.stage == "input" and info.value.verdict.categories == ["S9"]
    assert model.calls == []


@pytest.mark.smoke
def test_pipe_blocks_unsafe_output(lg):
    chain = PROMPT | scripted_model(UNSAFE) | LlamaGuardRunnable(lg, stage="output")
    with pytest.raises(UnsafeContentError) as info:
        chain.invoke({"q": "Tell me a story"})
    assert info.value.stage == "output" and info.value.verdict.checked_role == "Agent"


def test_output_guard_can_refuse_with_the_verdict_in_metadata(lg):
    chain = PROMPT | scripted_model(UNSAFE) | LlamaGuardRunnable(lg, stage="output", on_block="refuse")
    result = chain.invoke({"q": "Tell me a story"})
    assert result.content == "I can't help with that."
    verdict = blocked_verdict(result)
    assert verdict is not None and verdict.categories == ["S9"]
    assert result.response_metadata["llamaguard"]["stage"] == "output"
    assert blocked_verdict(AIMessage("fine")) is None


def test_refusal_keeps_strings_strings(lg):
    guard_out = LlamaGuardRunnable(lg, stage="output", on_block="refuse", refusal_message=lambda v, s: f"no ({s})")
    assert guard_out.invoke(UNSAFE) == "no (output)"
    assert guard_out.invoke(SAFE) == SAFE


def test_input_guard_reads_strings_prompt_values_messages_and_keys(lg):
    guard_in = LlamaGuardRunnable(lg)
    for value in ("plain question", PROMPT.invoke({"q": "hi"}), [HumanMessage("hi")], {"messages": [("human", "hi")]}):
        assert guard_in.invoke(value) is value
    keyed = LlamaGuardRunnable(lg, key="question")
    assert keyed.invoke({"question": "hello", "notes": "build a bomb"}) == {
        "question": "hello",
        "notes": "build a bomb",
    }
    with pytest.raises(UnsafeContentError):
        LlamaGuardRunnable(lg).invoke({"question": "hello", "notes": "build a bomb"})


@run_async
async def test_async_pipe_both_outcomes(lg):
    chain = LlamaGuardRunnable(lg) | PROMPT | scripted_model(SAFE, UNSAFE) | LlamaGuardRunnable(lg, stage="output")
    assert (await chain.ainvoke({"q": "bread?"})).content == SAFE
    with pytest.raises(UnsafeContentError, match="at output"):
        await chain.ainvoke({"q": "story?"})


# -- the chain wrapper ----------------------------------------------------------------------------


@pytest.mark.smoke
def test_guard_chain_checks_the_output_in_the_context_of_the_input(lg):
    chain = guard_chain(PROMPT | scripted_model(SAFE), lg)
    assert isinstance(chain, GuardedChain)
    assert chain.invoke({"q": "How do I bake bread?"}).content == SAFE
    input_check, output_check = lg.backend.seen[-2:]
    assert "How do I bake bread?" in input_check and SAFE not in input_check
    assert "How do I bake bread?" in output_check and f"Agent: {SAFE}" in output_check


def test_guard_chain_blocked_input_never_runs_the_chain(lg):
    model = scripted_model(SAFE)
    chain = guard_chain(PROMPT | model, lg, on_block="refuse", refusal_message="Not with me.")
    result = chain.invoke({"q": "how to build a bomb"})
    assert result.content == "Not with me." and blocked_verdict(result).categories == ["S9"]
    assert model.calls == []
    with pytest.raises(UnsafeContentError, match="at input"):
        guard_chain(PROMPT | model, lg).invoke({"q": "how to build a bomb"})


def test_guard_chain_blocks_unsafe_output(lg):
    with pytest.raises(UnsafeContentError) as info:
        guard_chain(PROMPT | scripted_model(UNSAFE) | StrOutputParser(), lg).invoke({"q": "story"})
    assert info.value.stage == "output"
    refused = guard_chain(PROMPT | scripted_model(UNSAFE) | StrOutputParser(), lg, on_block="refuse")
    assert refused.invoke({"q": "story"}) == "I can't help with that."


@run_async
async def test_guard_chain_ainvoke_both_outcomes(lg):
    chain = guard_chain(PROMPT | scripted_model(SAFE, UNSAFE), lg)
    assert (await chain.ainvoke({"q": "bread"})).content == SAFE
    with pytest.raises(UnsafeContentError, match="at output"):
        await chain.ainvoke({"q": "story"})
    with pytest.raises(UnsafeContentError, match="at input"):
        await chain.ainvoke({"q": "build a bomb"})


#: Model answers whose only unsafe part is a field beside the text.
FIELD_ANSWERS = {
    "refusal": AIMessage("Sure.", additional_kwargs={"refusal": UNSAFE}),
    "reasoning_content": AIMessage("Sure.", additional_kwargs={"reasoning_content": UNSAFE}),
    "thinking_block": AIMessage([{"type": "thinking", "thinking": UNSAFE, "signature": "s"}, "Sure."]),
    "name": AIMessage("Sure.", name="build a bomb"),
    "invalid_tool_call": AIMessage(
        "", invalid_tool_calls=[{"name": "lookup", "args": UNSAFE + "{", "id": "c1", "error": "bad JSON"}]
    ),
    "additional_kwargs_tool_call": AIMessage(
        "",
        tool_calls=[{"name": "lookup", "args": {}, "id": "c1"}],
        additional_kwargs={
            "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": UNSAFE}}]
        },
    ),
}


@pytest.mark.parametrize("field", list(FIELD_ANSWERS))
def test_guard_chain_checks_every_field_of_the_answer(lg, field):
    chain = guard_chain(PROMPT | GenericFakeChatModel(messages=iter([FIELD_ANSWERS[field]])), lg)
    with pytest.raises(UnsafeContentError, match="at output"):
        chain.invoke({"q": "story?"})


def test_guard_chain_checks_the_other_entries_of_an_output_state(lg):
    """An agent state's structured_response (or any other entry) reaches the caller: it is checked with the answer."""
    state = {"messages": [HumanMessage("plan?"), AIMessage("Here is the plan.")], "structured_response": UNSAFE}
    with pytest.raises(UnsafeContentError, match="at output"):
        guard_chain(RunnableLambda(lambda _: state), lg).invoke({"messages": [HumanMessage("plan?")]})


def test_batch_with_mixed_outcomes(lg):
    calls: list[str] = []
    chain = guard_chain(answer_by_question(calls), lg)
    inputs = [{"q": "bread?"}, {"q": "how to build a bomb?"}, {"q": "story?"}]
    results = chain.batch(inputs, return_exceptions=True)
    assert results[0].content == SAFE
    assert isinstance(results[1], UnsafeContentError) and results[1].stage == "input"
    assert isinstance(results[2], UnsafeContentError) and results[2].stage == "output"
    assert sorted(calls) == ["bread?", "story?"]  # the blocked input never reached the model
    with pytest.raises(UnsafeContentError):
        chain.batch(inputs)
    assert [r.content for r in chain.batch(inputs[:1])] == [SAFE]


@run_async
async def test_abatch_return_exceptions_and_refusals(lg):
    calls: list[str] = []
    inputs = [{"q": "story?"}, {"q": "bread?"}, {"q": "build a bomb"}]
    results = await guard_chain(answer_by_question(calls), lg).abatch(inputs, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["UnsafeContentError", "AIMessage", "UnsafeContentError"]
    refused = await guard_chain(answer_by_question(calls), lg, on_block="refuse").abatch(inputs)
    assert [r.content for r in refused] == ["I can't help with that.", SAFE, "I can't help with that."]


def test_guard_runnable_batch_is_one_classifier_pass(lg):
    calls_before = len(lg.backend.calls)
    results = LlamaGuardRunnable(lg).batch(["fine", "build a bomb", "also fine"], return_exceptions=True)
    assert results[0] == "fine" and results[2] == "also fine" and isinstance(results[1], UnsafeContentError)
    assert len(lg.backend.calls) == calls_before + 1


@run_async
async def test_guard_runnable_abatch(lg):
    results = await LlamaGuardRunnable(lg, stage="output").abatch([SAFE, UNSAFE], return_exceptions=True)
    assert results[0] == SAFE and isinstance(results[1], UnsafeContentError)


# -- streaming ------------------------------------------------------------------------------------


def collect(stream) -> tuple[list[Any], BaseException | None]:
    chunks: list[Any] = []
    try:
        for chunk in stream:
            chunks.append(chunk)
    except UnsafeContentError as exc:
        return chunks, exc
    return chunks, None


async def acollect(stream) -> tuple[list[Any], BaseException | None]:
    chunks: list[Any] = []
    try:
        async for chunk in stream:
            chunks.append(chunk)
    except UnsafeContentError as exc:
        return chunks, exc
    return chunks, None


def text(chunks: list[Any]) -> str:
    return "".join(c if isinstance(c, str) else c.content for c in chunks)


def assert_no_part_of_the_phrase(received: str) -> None:
    cut = UNSAFE.index(PHRASE)
    assert UNSAFE.startswith(received) and len(received) <= cut, received  # nothing from the phrase on


def test_buffered_stream_releases_nothing_unsafe(lg):
    chain = guard_chain(PROMPT | scripted_model(UNSAFE) | StrOutputParser(), lg)
    chunks, error = collect(chain.stream({"q": "story"}))
    assert chunks == [] and error.stage == "output"


def test_buffered_stream_releases_safe_chunks_unchanged(lg):
    chain = guard_chain(PROMPT | scripted_model(SAFE), lg)
    chunks, error = collect(chain.stream({"q": "bread"}))
    assert error is None and len(chunks) > 10 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert text(chunks) == SAFE


@pytest.mark.smoke
def test_windowed_stream_never_releases_a_planted_phrase_split_across_chunks(lg):
    chain = guard_chain(
        PROMPT | scripted_model(UNSAFE) | StrOutputParser(),
        lg,
        stream_mode="windowed",
        window_size=8,
        window_overlap=16,
    )
    chunks, error = collect(chain.stream({"q": "story"}))
    assert error is not None and error.stage == "output"
    received = text(chunks)
    assert received, "windowed mode releases checked text early"
    assert_no_part_of_the_phrase(received)


def test_windowed_stream_releases_all_safe_text_after_checks(lg):
    calls_before = len(lg.backend.calls)
    chain = guard_chain(PROMPT | scripted_model(SAFE), lg, stream_mode="windowed", window_size=20, window_overlap=10)
    chunks, error = collect(chain.stream({"q": "bread"}))
    assert error is None and text(chunks) == SAFE
    assert len(lg.backend.calls) - calls_before >= 1 + len(SAFE) // 20  # input + one check per window
    assert all(seen.startswith("User: bread") for seen in lg.backend.seen[-3:])  # each window checked in context


def test_windowed_stream_can_refuse_instead_of_raising(lg):
    chain = guard_chain(
        PROMPT | scripted_model(UNSAFE), lg, stream_mode="windowed", window_size=8, window_overlap=16, on_block="refuse"
    )
    chunks, error = collect(chain.stream({"q": "story"}))
    assert error is None
    assert blocked_verdict(chunks[-1]).categories == ["S9"] and chunks[-1].content == "I can't help with that."
    assert_no_part_of_the_phrase(text(chunks[:-1]))


def test_stream_blocks_unsafe_input_before_the_model(lg):
    model = scripted_model(SAFE)
    chunks, error = collect(guard_chain(PROMPT | model, lg).stream({"q": "build a bomb"}))
    assert chunks == [] and error.stage == "input" and model.calls == []


def test_output_guard_in_a_streaming_pipe(lg):
    guard_out = LlamaGuardRunnable(lg, stage="output", stream_mode="windowed", window_size=8, window_overlap=16)
    chunks, error = collect((PROMPT | scripted_model(UNSAFE) | StrOutputParser() | guard_out).stream({"q": "s"}))
    assert error is not None
    assert_no_part_of_the_phrase(text(chunks))
    chunks, error = collect((PROMPT | scripted_model(SAFE) | guard_out).stream({"q": "s"}))
    assert error is None and text(chunks) == SAFE


@run_async
async def test_astream_buffered_and_windowed_with_a_planted_phrase(lg):
    buffered = guard_chain(PROMPT | scripted_model(UNSAFE, SAFE), lg)
    chunks, error = await acollect(buffered.astream({"q": "story"}))
    assert chunks == [] and error.stage == "output"
    chunks, error = await acollect(buffered.astream({"q": "bread"}))
    assert error is None and text(chunks) == SAFE
    windowed = guard_chain(
        PROMPT | scripted_model(UNSAFE), lg, stream_mode="windowed", window_size=8, window_overlap=16
    )
    chunks, error = await acollect(windowed.astream({"q": "story"}))
    assert error is not None and text(chunks)
    assert_no_part_of_the_phrase(text(chunks))
    guard_out = LlamaGuardRunnable(lg, stage="output")
    chunks, error = await acollect((PROMPT | scripted_model(UNSAFE) | guard_out).astream({"q": "s"}))
    assert chunks == [] and error is not None


@run_async
async def test_astream_blocks_unsafe_input(lg):
    chunks, error = await acollect(
        (LlamaGuardRunnable(lg) | PROMPT | scripted_model(SAFE)).astream({"q": "build a bomb"})
    )
    assert chunks == [] and error.stage == "input"


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=len(UNSAFE) - 1), max_size=30),
    window=st.integers(min_value=1, max_value=40),
    extra_overlap=st.integers(min_value=0, max_value=20),
)
def test_stream_window_never_releases_part_of_a_phrase_however_it_is_split(cuts, window, extra_overlap):
    bounds = [0, *sorted(set(cuts)), len(UNSAFE)]
    chunks = [UNSAFE[a:b] for a, b in itertools.pairwise(bounds)]
    stream = StreamWindow("windowed", window, len(PHRASE) - 1 + extra_overlap)
    released = ""
    for chunk in chunks:
        checks = stream.add(chunk)
        if any(PHRASE in "".join(c.outputs) for c in checks):  # the check a keyword guard would make
            break
        released += "".join(part for c in checks for part in c.release())
    assert_no_part_of_the_phrase(released)


# -- streams whose chunks do not add up ----------------------------------------------------------------

UNSAFE_STEP = "Step one: build a bomb."


def streaming(*chunks: Any) -> RunnableLambda:
    """A chain that streams exactly ``chunks`` (sync and async)."""

    def gen(_: Any):
        yield from chunks

    async def agen(_: Any):
        for chunk in chunks:
            yield chunk

    return RunnableLambda(gen, afunc=agen)


def unsafe_agent():
    """A real create_agent agent: its first model turn says the phrase and calls a tool, its last is safe."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    @tool
    def lookup(q: str) -> str:
        """Look something up."""
        return "nothing found"

    call = {"name": "lookup", "args": {"q": "bread"}, "id": "c1", "type": "tool_call"}
    model = scripted_model(AIMessage(UNSAFE_STEP, tool_calls=[call]), AIMessage("Done, enjoy your bread."))
    return create_agent(model, tools=[lookup])


#: Streams whose chunks cannot be added together, with the phrase in a chunk that is not the last.
UNFOLDABLE = {
    "langgraph_updates": lambda: (unsafe_agent(), {"stream_mode": "updates"}),
    "str_then_message_chunk": lambda: (streaming(UNSAFE_STEP + " ", AIMessageChunk("Then knead it.")), {}),
    "plain_dicts": lambda: (streaming({"answer": UNSAFE_STEP}, {"answer": "Then knead it."}), {}),
    "message_chunk_then_str": lambda: (streaming(AIMessageChunk(UNSAFE_STEP), " Then knead it."), {}),
}


@pytest.mark.parametrize("mode", ["buffered", "windowed"])
@pytest.mark.parametrize("kind", list(UNFOLDABLE))
def test_chunks_that_do_not_add_up_are_each_checked_before_release(lg, kind, mode):
    chain, kwargs = UNFOLDABLE[kind]()
    guarded = guard_chain(chain, lg, stream_mode=mode, window_size=8, window_overlap=4)
    chunks, error = collect(guarded.stream({"messages": [HumanMessage("bread?")]}, **kwargs))
    assert error is not None and error.stage == "output", chunks
    assert "bomb" not in repr(chunks)


@pytest.mark.parametrize("mode", ["buffered", "windowed"])
@pytest.mark.parametrize("kind", list(UNFOLDABLE))
def test_chunks_that_do_not_add_up_are_each_checked_before_release_async(lg, kind, mode):
    chain, kwargs = UNFOLDABLE[kind]()
    guarded = guard_chain(chain, lg, stream_mode=mode, window_size=8, window_overlap=4)
    chunks, error = run_async(acollect)(guarded.astream({"messages": [HumanMessage("bread?")]}, **kwargs))
    assert error is not None and error.stage == "output", chunks
    assert "bomb" not in repr(chunks)


@pytest.mark.parametrize("run", ["stream", "astream"])
def test_a_blocked_stream_stops_the_wrapped_chain(lg, run):
    """The block ends the wrapped chain's stream at once: nothing more is generated."""
    state = {"sent": 0, "closed": False}
    words = [UNSAFE_STEP, *["Then knead it."] * 50]

    def gen(_: Any):
        try:
            for word in words:
                state["sent"] += 1
                yield word + " "
        finally:
            state["closed"] = True

    async def agen(_: Any):
        for chunk in gen(_):
            yield chunk

    chain = guard_chain(RunnableLambda(gen, afunc=agen), lg, stream_mode="windowed", window_size=8, window_overlap=4)
    if run == "stream":
        chunks, error = collect(chain.stream("hi"))
    else:
        chunks, error = run_async(acollect)(chain.astream("hi"))
    assert error is not None and error.stage == "output" and chunks == []
    assert state["closed"] and state["sent"] < len(words)


@pytest.mark.parametrize("mode", ["buffered", "windowed"])
def test_safe_chunks_that_do_not_add_up_are_all_shown_then_released_in_order(lg, mode):
    sent = ["Mix flour and water. ", AIMessageChunk("Knead it well."), {"tip": "Let it rest."}, "Bake an hour."]
    seen_before = len(lg.backend.seen)
    guarded = guard_chain(streaming(*sent), lg, stream_mode=mode, window_size=8, window_overlap=4)
    chunks, error = collect(guarded.stream("bread?"))
    assert error is None and chunks == sent
    seen = "\n".join(lg.backend.seen[seen_before:])
    assert all(t in seen for t in ("Mix flour and water.", "Knead it well.", "Let it rest.", "Bake an hour."))


@pytest.mark.parametrize("mode", ["buffered", "windowed"])
def test_streamed_reasoning_is_checked_before_any_text_is_released(lg, mode):
    """Reasoning arrives in chunks' additional_kwargs: it is no plain text, so it waits for the whole check."""
    chunks_in = [
        AIMessageChunk("", additional_kwargs={"reasoning_content": "First I will build a "}),
        AIMessageChunk("", additional_kwargs={"reasoning_content": "bomb."}),
        *[AIMessageChunk(word + " ") for word in SAFE.split()],
    ]
    guarded = guard_chain(streaming(*chunks_in), lg, stream_mode=mode, window_size=8, window_overlap=4)
    chunks, error = collect(guarded.stream("bread?"))
    assert error is not None and error.stage == "output" and chunks == []


#: Streams whose message chunks carry a ``name`` (LangChain's ``+`` drops it): the name reaches the caller.
NAMED = {
    "named_then_last": lambda word: [
        AIMessageChunk("Here it is.", name=f"{word}_bot"),
        AIMessageChunk("", chunk_position="last"),
    ],
    "second_name_differs": lambda word: [
        AIMessageChunk("Here", name="chef"),
        AIMessageChunk(" it is.", name=f"{word}_bot"),
    ],
}


def named_streams(lg, mode: str) -> dict[str, Any]:
    """Every streaming entry point over a chain that streams ``chunks``: (stream(chunks) -> chunks, error)."""
    window = {"stream_mode": mode, "window_size": 8, "window_overlap": 4}
    return {
        "guard_chain.stream": lambda chunks: collect(guard_chain(streaming(*chunks), lg, **window).stream("hi")),
        "guard_chain.astream": lambda chunks: run_async(acollect)(
            guard_chain(streaming(*chunks), lg, **window).astream("hi")
        ),
        "output step .stream": lambda chunks: collect(
            (streaming(*chunks) | LlamaGuardRunnable(lg, stage="output", **window)).stream("hi")
        ),
    }


@pytest.mark.parametrize("mode", ["buffered", "windowed"])
@pytest.mark.parametrize("kind", list(NAMED))
def test_a_streamed_chunks_name_is_shown_to_the_guard(lg, kind, mode):
    """Adding message chunks drops their ``name``; every name a caller receives is still checked."""
    for entry, run in named_streams(lg, mode).items():
        chunks, error = run(NAMED[kind]("poison"))
        assert error is not None and error.stage == "output", (entry, chunks)
        assert "poison" not in repr(chunks), entry
        sent = NAMED[kind]("bread")
        chunks, error = run(sent)
        assert error is None and chunks == sent, entry
        assert "[name: bread_bot]" in lg.backend.seen[-1], entry


def test_stream_windows_are_validated(lg):
    with pytest.raises(ValueError, match="window_size"):
        guard_chain(PROMPT, lg, stream_mode="windowed", window_size=0)
    with pytest.raises(ValueError, match="stream_mode"):
        LlamaGuardRunnable(lg, stream_mode="chunked")


def test_inner_tokens_stay_hidden_from_langgraph_message_streams(lg):
    def graph_with(chain):
        graph = StateGraph(MessagesState)
        graph.add_node("answer", lambda state: {"messages": [chain.invoke(state["messages"])]})
        graph.add_edge(START, "answer")
        return graph.compile()

    guarded = guard_chain(scripted_model(UNSAFE), lg, on_block="refuse")
    streamed = [
        c.content for c, _ in graph_with(guarded).stream({"messages": [("human", "hi")]}, stream_mode="messages")
    ]
    assert streamed == ["I can't help with that."]
    leaky = guard_chain(scripted_model(UNSAFE), lg, on_block="refuse", nostream=False)
    streamed = [c.content for c, _ in graph_with(leaky).stream({"messages": [("human", "hi")]}, stream_mode="messages")]
    assert "bomb." in streamed  # why the wrapped chain is tagged "nostream"


@run_async
async def test_astream_events_without_nostream_runs_show_only_checked_output(lg):
    events = []
    with pytest.raises(UnsafeContentError):
        chain = guard_chain(PROMPT | scripted_model(UNSAFE), lg)
        async for event in chain.astream_events({"q": "story"}, version="v2", exclude_tags=["nostream"]):
            events.append(event)
    assert [e["event"] for e in events] == ["on_chain_start"]
    events = [
        e
        async for e in guard_chain(PROMPT | scripted_model(SAFE), lg).astream_events(
            {"q": "b"}, version="v2", exclude_tags=["nostream"]
        )
    ]
    streamed = "".join(e["data"]["chunk"].content for e in events if e["event"] == "on_chain_stream")
    assert streamed == SAFE


# -- config, tracing, callbacks -------------------------------------------------------------------


class RunRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.chains: list[tuple[str, list[str]]] = []
        self.models: list[list[str]] = []

    def on_chain_start(self, serialized, inputs, *, tags=None, **kwargs):
        self.chains.append((kwargs.get("name"), list(tags or [])))

    def on_chat_model_start(self, serialized, messages, *, tags=None, **kwargs):
        self.models.append(list(tags or []))


def test_guard_runs_appear_in_traces_with_tags_and_callbacks(lg):
    recorder = RunRecorder()
    config = {"tags": ["t1"], "callbacks": [recorder]}
    guard_chain(PROMPT | scripted_model(SAFE), lg).invoke({"q": "bread"}, config)
    (LlamaGuardRunnable(lg) | PROMPT | scripted_model(SAFE)).invoke({"q": "bread"}, config)
    names = {name: tags for name, tags in recorder.chains}
    assert "t1" in names["LlamaGuard[RunnableSequence]"]
    assert "t1" in names["LlamaGuardInput"]
    assert len(recorder.models) == 2 and all("t1" in tags for tags in recorder.models)
    chunks, _ = collect(guard_chain(PROMPT | scripted_model(SAFE), lg, name="my-guard").stream({"q": "b"}, config))
    assert chunks and ("my-guard", ["t1"]) in recorder.chains


def test_several_runnables_share_one_guard_and_record_verdicts(lg):
    seen: list[tuple[str, bool]] = []
    guard_in = LlamaGuardRunnable(lg, on_verdict=lambda v, stage: seen.append((stage, v.safe)))
    guard_out = LlamaGuardRunnable(lg, stage="output", on_verdict=lambda v, stage: seen.append((stage, v.safe)))
    assert guard_in.guard is guard_out.guard
    (guard_in | PROMPT | scripted_model(SAFE) | guard_out).invoke({"q": "bread"})
    assert seen == [("input", True), ("output", True)]


# -- the real test model, end to end --------------------------------------------------------------


@pytest.mark.smoke
def test_real_guard_end_to_end_pipe_chain_batch(guard):
    passes, blocks = Policy(threshold=1.0), Policy(threshold=0.0)
    pipe = LlamaGuardRunnable(guard, policy=passes) | PROMPT | scripted_model(SAFE)
    assert pipe.invoke({"q": "How do I bake bread?"}).content == SAFE
    with pytest.raises(UnsafeContentError) as info:
        LlamaGuardRunnable(guard, policy=blocks).invoke("How do I bake bread?")
    assert 0.0 <= info.value.verdict.unsafe_probability <= 1.0 and info.value.verdict.error is None
    chain = guard_chain(PROMPT | scripted_model(SAFE, SAFE), guard, input_policy=passes, output_policy=blocks)
    with pytest.raises(UnsafeContentError, match="at output"):
        chain.invoke({"q": "bread"})
    results = guard_chain(answer_by_question([]), guard, policy=blocks).batch(
        [{"q": "a"}, {"q": "b"}], return_exceptions=True
    )
    assert all(isinstance(r, UnsafeContentError) for r in results)


@pytest.mark.smoke
def test_real_guard_end_to_end_stream_and_astream(guard):
    chain = guard_chain(
        PROMPT | scripted_model(SAFE, SAFE), guard, policy=Policy(threshold=1.0), stream_mode="windowed"
    )
    chunks, error = collect(chain.stream({"q": "bread"}))
    assert error is None and text(chunks) == SAFE
    blocked = guard_chain(
        PROMPT | scripted_model(SAFE), guard, input_policy=Policy(threshold=1.0), output_policy=Policy(threshold=0.0)
    )
    chunks, error = asyncio.run(acollect(blocked.astream({"q": "bread"})))
    assert chunks == [] and error.stage == "output"


class Step(BaseModel):
    title: str
    detail: str


class Plan(BaseModel):
    summary: str
    steps: list[Step]
    tags: dict[str, str] = {}


STRUCTURED = {
    "one field": lambda text: Step(title="Plan", detail=text),
    "nested in a list": lambda text: Plan(
        summary="A plan.", steps=[Step(title="a", detail="ok"), Step(title="b", detail=text)]
    ),
    "a dict value": lambda text: Plan(summary="A plan.", steps=[], tags={"note": text}),
    "include_raw": lambda text: {
        "raw": AIMessage(""),
        "parsed": Step(title="Plan", detail=text),
        "parsing_error": None,
    },
}


@pytest.mark.parametrize("shape", list(STRUCTURED))
@pytest.mark.parametrize("how", ["invoke", "ainvoke", "batch", "stream"])
def test_guard_chain_checks_a_structured_output_field_by_field(lg, shape, how):
    """``with_structured_output`` gives a pydantic model (or, with ``include_raw``, a dict holding one): every field
    is checked, and a safe one reaches the caller as the same object."""
    make = STRUCTURED[shape]

    def run(text: str) -> Any:
        chain = guard_chain(RunnableLambda(lambda _: make(text)), lg)
        if how == "invoke":
            return chain.invoke({"q": "plan?"})
        if how == "ainvoke":
            return asyncio.run(chain.ainvoke({"q": "plan?"}))
        if how == "batch":
            return chain.batch([{"q": "plan?"}])[0]
        (only,) = list(chain.stream({"q": "plan?"}))
        return only

    assert run("Knead the dough.") == make("Knead the dough.")
    with pytest.raises(UnsafeContentError, match="at output"):
        run(UNSAFE)
