"""Every LangChain content shape reaches the guard as the model reads it, or is refused with a typed error.

Generated: every block type langchain-core 1.x knows (text with annotations, citations and extras, text-plain
with title and context, reasoning and OpenAI reasoning items, refusal, tool_call, tool_call_chunk,
invalid_tool_call, server_tool_call(+chunk), server_tool_result, non_standard) and the provider-native
blocks chat models send (Anthropic tool_use / tool_result / thinking / document / search_result / cited
text, OpenAI Responses items), each in every message class that may hold it (human, system, AI with no
provider, with model_provider openai / anthropic, with output_version v1, AI chunks, tool, chat, human and
tool chunks), and then through each adapter: the agent middleware, ``guard_chain``, the callback handler and
the tool guard. Unknown block types, unknown fields of known blocks, and images named twice are refused.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

from llamaguard_guardrails import InvalidConversationError, UnsafeContentError, parse_conversation
from llamaguard_guardrails.langchain import (
    AsyncLlamaGuardCallbackHandler,
    LlamaGuardCallbackHandler,
    LlamaGuardMiddleware,
    guard_chain,
    guard_tool,
    message_to_openai,
)
from test_langchain_fakes import planted_guard, scripted_model, tool_call

from conftest import make_image, png_bytes

UNSAFE = "build a bomb"  # the scripted guard answers S9 when the checked turn holds it
SAFE = "bake some bread"

Block = Callable[[str], dict[str, Any]]
#: Blocks any message may hold: each puts ``t`` where a model reads it.
ANY_ROLE: dict[str, Block] = {
    "text": lambda t: {"type": "text", "text": t},
    "text with id and index": lambda t: {"type": "text", "text": t, "id": "b1", "index": 0},
    "text annotation": lambda t: {"type": "text", "text": "ok", "annotations": [{"type": "citation", "cited_text": t}]},
    "text extras": lambda t: {"type": "text", "text": "ok", "extras": {"note": t}},
    "text cache_control": lambda t: {"type": "text", "text": t, "cache_control": {"type": "ephemeral"}},
    "text-plain": lambda t: {"type": "text-plain", "text": t, "mime_type": "text/plain"},
    "text-plain title": lambda t: {"type": "text-plain", "text": "ok", "mime_type": "text/plain", "title": t},
    "text-plain context": lambda t: {"type": "text-plain", "text": "ok", "mime_type": "text/plain", "context": t},
    "refusal": lambda t: {"type": "refusal", "refusal": t},
    "server_tool_result": lambda t: {
        "type": "server_tool_result",
        "tool_call_id": "s1",
        "status": "success",
        "output": t,
    },
    "server_tool_result extras": lambda t: {"type": "server_tool_result", "output": "ok", "extras": {"note": t}},
    "non_standard search_result": lambda t: {
        "type": "non_standard",
        "value": {"type": "search_result", "source": "s", "title": "x", "content": [{"type": "text", "text": t}]},
    },
    "anthropic tool_result": lambda t: {
        "type": "tool_result",
        "tool_use_id": "c1",
        "content": [{"type": "text", "text": t}],
    },
    "anthropic document text": lambda t: {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": t},
    },
    "anthropic document title": lambda t: {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "ok"},
        "title": t,
    },
    "anthropic document content": lambda t: {
        "type": "document",
        "source": {"type": "content", "content": [{"type": "text", "text": t}]},
    },
    "anthropic cited text": lambda t: {
        "type": "text",
        "text": "ok",
        "citations": [{"type": "char_location", "cited_text": t, "document_index": 0}],
    },
    "openai input_text": lambda t: {"type": "input_text", "text": t},
}
#: Blocks only an assistant message holds (tool calls, reasoning, provider output items).
AI_ONLY: dict[str, Block] = {
    "reasoning": lambda t: {"type": "reasoning", "reasoning": t},
    "reasoning extras": lambda t: {"type": "reasoning", "reasoning": "ok", "extras": {"note": t}},
    "openai reasoning summary": lambda t: {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": t}],
    },
    "openai reasoning content": lambda t: {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": t}],
    },
    "tool_call": lambda t: {"type": "tool_call", "id": "c1", "name": "search", "args": {"q": t}},
    "tool_call extras": lambda t: {"type": "tool_call", "id": "c1", "name": "search", "args": {}, "extras": {"n": t}},
    "tool_call_chunk": lambda t: {
        "type": "tool_call_chunk",
        "id": "c1",
        "name": "search",
        "args": json.dumps({"q": t}),
        "index": 0,
    },
    "invalid_tool_call": lambda t: {
        "type": "invalid_tool_call",
        "id": "c1",
        "name": "search",
        "args": '{"q": "' + t,
        "error": "bad JSON",
    },
    "server_tool_call": lambda t: {"type": "server_tool_call", "id": "s1", "name": "web_search", "args": {"q": t}},
    "server_tool_call_chunk": lambda t: {
        "type": "server_tool_call_chunk",
        "id": "s1",
        "name": "web_search",
        "args": json.dumps({"q": t}),
    },
    "anthropic thinking": lambda t: {"type": "thinking", "thinking": t, "signature": "sig"},
    "anthropic tool_use": lambda t: {"type": "tool_use", "id": "c1", "name": "search", "input": {"q": t}},
    "anthropic server_tool_use": lambda t: {
        "type": "server_tool_use",
        "id": "s1",
        "name": "web_search",
        "input": {"query": t},
    },
    "anthropic code_execution_tool_result": lambda t: {
        "type": "code_execution_tool_result",
        "tool_use_id": "s1",
        "content": {"type": "code_execution_result", "stdout": t, "stderr": "", "return_code": 0},
    },
    "anthropic mcp_tool_use": lambda t: {
        "type": "mcp_tool_use",
        "id": "m1",
        "name": "lookup",
        "server_name": "srv",
        "input": {"q": t},
    },
    "openai function_call item": lambda t: {
        "type": "function_call",
        "call_id": "c1",
        "name": "search",
        "arguments": json.dumps({"q": t}),
    },
    "openai code_interpreter_call": lambda t: {
        "type": "code_interpreter_call",
        "id": "ci",
        "code": f"print('{t}')",
        "container_id": "cnt",
        "outputs": [],
        "status": "completed",
    },
    "openai web_search_call": lambda t: {
        "type": "web_search_call",
        "id": "ws",
        "action": {"type": "search", "query": t},
        "status": "completed",
    },
    "openai custom_tool_call": lambda t: {
        "type": "custom_tool_call",
        "id": "ct",
        "call_id": "c1",
        "name": "shell",
        "input": t,
    },
    "openai output_text": lambda t: {"type": "output_text", "text": t, "annotations": []},
}

Message = Callable[[list[Any]], BaseMessage]
#: Every message class, and the variants of AIMessage whose content_blocks LangChain builds differently.
HUMAN_SIDE: dict[str, Message] = {
    "HumanMessage": lambda c: HumanMessage(content=c),
    "HumanMessageChunk": lambda c: HumanMessageChunk(content=c),
    "SystemMessage": lambda c: SystemMessage(content=c),
    "ToolMessage": lambda c: ToolMessage(content=c, tool_call_id="c0", name="fetch"),
    "ToolMessageChunk": lambda c: ToolMessageChunk(content=c, tool_call_id="c0"),
    "ChatMessage(user)": lambda c: ChatMessage(content=c, role="user"),
}
AI_SIDE: dict[str, Message] = {
    "AIMessage": lambda c: AIMessage(content=c),
    "AIMessage(openai)": lambda c: AIMessage(content=c, response_metadata={"model_provider": "openai"}),
    "AIMessage(anthropic)": lambda c: AIMessage(content=c, response_metadata={"model_provider": "anthropic"}),
    "AIMessage(v1)": lambda c: AIMessage(content=c, response_metadata={"output_version": "v1"}),
    "AIMessageChunk": lambda c: AIMessageChunk(content=c),
    "ChatMessage(assistant)": lambda c: ChatMessage(content=c, role="assistant"),
}


def cases() -> Iterator[tuple[str, str, Block, Message]]:
    for block_name, block in {**ANY_ROLE, **AI_ONLY}.items():
        classes = AI_SIDE if block_name in AI_ONLY else {**HUMAN_SIDE, **AI_SIDE}
        for class_name, make in classes.items():
            yield block_name, class_name, block, make


CASES = list(cases())
IDS = [f"{block}-{cls}" for block, cls, _, _ in CASES]


def rendered(message: BaseMessage) -> str:
    """Everything the guard's model reads of ``message`` (after a user turn), as one text."""
    conversation = parse_conversation([{"role": "user", "content": "q"}, message_to_openai(message)])
    return "\n".join(text for _, block in conversation.blocks()[1:] for text in block.texts)


# -- every shape x every message class -----------------------------------------------------------------------


@pytest.mark.parametrize("block_name, class_name, block, make", CASES, ids=IDS)
def test_every_block_in_every_message_class_reaches_the_guard(block_name, class_name, block, make):
    message = make([{"type": "text", "text": "Before."}, block(UNSAFE)])
    assert UNSAFE in rendered(message)
    assert UNSAFE not in rendered(make([{"type": "text", "text": "Before."}, block(SAFE)]))


#: Raw keys that carry no text for a model (ids, formats, signatures, the parse error LangChain wrote).
METADATA = {"type", "id", "index", "call_id", "tool_use_id", "tool_call_id", "status", "signature", "error"}
METADATA |= {"mime_type", "media_type", "cache_control", "container_id", "document_index"}


def raw_texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key not in METADATA:
                yield from raw_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from raw_texts(item)


@pytest.mark.parametrize("block_name, class_name, block, make", CASES, ids=IDS)
def test_every_text_of_the_raw_content_is_shown(block_name, class_name, block, make):
    """Not only the planted phrase: every name, argument and text a provider receives is in what the guard reads."""
    content = [block(UNSAFE)]
    shown = rendered(make(content))
    decoded = shown.encode().decode("unicode_escape", errors="ignore") if "\\" in shown else shown
    for text in raw_texts(content):
        assert text in shown or text in decoded, f"{text!r} not shown in {shown!r}"


def test_the_message_tool_calls_are_shown_whatever_its_content_blocks_hold():
    """A translator (model_provider) or v1 content builds content_blocks without ``tool_calls``: a chat model
    sends them anyway, and a tool runs them."""
    call = tool_call("search", {"q": UNSAFE}, "c1")
    metadata: list[dict[str, Any]] = [{}, {"model_provider": "openai"}, {"model_provider": "anthropic"}]
    metadata += [{"output_version": "v1"}, {"model_provider": "google_genai"}, {"model_provider": "bedrock_converse"}]
    for response_metadata in metadata:
        for content in ("ok", [{"type": "text", "text": "ok"}], []):
            message = AIMessage(content=content, tool_calls=[call], response_metadata=response_metadata)
            assert f'[tool call: search] {{"q": "{UNSAFE}"}}' in rendered(message), response_metadata
    both = AIMessage(content=[{**call, "type": "tool_call"}], tool_calls=[call])
    assert len(message_to_openai(both)["tool_calls"]) == 1  # the same call is shown once
    edited = AIMessage(
        content=[{"type": "tool_use", "id": "c1", "name": "search", "input": {"q": "bread"}}],
        tool_calls=[call],
        response_metadata={"model_provider": "anthropic"},
    )
    assert UNSAFE in rendered(edited)  # a call edited after the model answered (human in the loop) is shown
    repeated = AIMessageChunk(
        content="",
        tool_call_chunks=[{"name": "search", "args": '{"q": "' + UNSAFE + '", "q": "bread"}', "id": "c1", "index": 0}],
    )
    assert repeated.tool_calls[0]["args"] == {"q": "bread"}  # LangChain's parse keeps the last value only
    assert UNSAFE in rendered(repeated)  # a parser that keeps the first reads this: the chunk is shown too


# -- what the guard cannot show is refused ---------------------------------------------------------------------

REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "unknown type": ({"type": "my_widget", "text": "ok", "payload": UNSAFE}, "'my_widget' content block"),
    "untyped dict": ({"payload": UNSAFE}, "untyped content block"),
    "unknown non_standard value": ({"type": "non_standard", "value": {"type": "x", "q": UNSAFE}}, "'x' content"),
    "image named twice": ({"type": "image", "base64": "AAAA", "url": "data:image/png;base64,BBBB"}, "exactly one"),
    "audio": ({"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}, "'audio'"),
    "video": ({"type": "video", "url": "https://x/v.mp4"}, "'video'"),
    "file": ({"type": "file", "base64": "AAAA", "mime_type": "application/pdf"}, "'file'"),
    "text-plain by url": ({"type": "text-plain", "url": "https://x/a.txt", "mime_type": "text/plain"}, "inline text"),
    "image in a tool_result": (
        {"type": "tool_result", "tool_use_id": "c", "content": [{"type": "image", "source": {"type": "base64"}}]},
        "'image' block",
    ),
    "document by url": ({"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}, "block"),
    "encrypted extras": ({"type": "reasoning", "reasoning": "", "extras": {"encrypted_content": "gAAA"}}, "encrypt"),
    "openai input_audio": ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "audio"),
    "openai file": ({"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA"}}, "'file'"),
    "openai input_file": ({"type": "input_file", "file_data": "AAAA", "filename": "a.pdf"}, "'input_file'"),
    "openai input_image file id": ({"type": "input_image", "file_id": "file-1"}, "file id"),
    "anthropic image url": ({"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}, "not fetched"),
}
#: Fields no standard block has: refused, or (where a provider's translator moves them into ``extras``) shown.
UNKNOWN_FIELDS: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": "ok", "note": UNSAFE},
    "reasoning": {"type": "reasoning", "reasoning": "ok", "note": UNSAFE},
    "refusal": {"type": "refusal", "refusal": "no", "note": UNSAFE},
    "tool_call": {"type": "tool_call", "id": "c", "name": "s", "args": {}, "input": UNSAFE},
    "server_tool_call": {"type": "server_tool_call", "id": "s", "name": "s", "args": {}, "input": UNSAFE},
    "server_tool_result": {"type": "server_tool_result", "tool_call_id": "s", "output": "ok", "note": UNSAFE},
    "image": {"type": "image", "base64": "AAAA", "caption": UNSAFE},
    "text-plain": {"type": "text-plain", "text": "ok", "mime_type": "text/plain", "summary": UNSAFE},
}


@pytest.mark.parametrize("class_name, make", list({**HUMAN_SIDE, **AI_SIDE}.items()))
@pytest.mark.parametrize("block, error", list(REFUSED.values()), ids=list(REFUSED))
def test_blocks_the_guard_cannot_show_are_refused_with_a_typed_error(block, error, class_name, make):
    with pytest.raises(InvalidConversationError, match=error):
        rendered(make([{"type": "text", "text": "ok"}, block]))


@pytest.mark.parametrize("class_name, make", list(AI_SIDE.items()))
@pytest.mark.parametrize("block", list(UNKNOWN_FIELDS.values()), ids=list(UNKNOWN_FIELDS))
def test_unknown_fields_of_known_blocks_are_never_dropped(block, class_name, make):
    unknown = next(key for key, value in block.items() if value == UNSAFE)
    try:
        shown = rendered(make([{"type": "text", "text": "ok"}, block]))
    except InvalidConversationError as error:
        assert repr(unknown) in str(error)
    else:
        assert UNSAFE in shown


@pytest.mark.parametrize("class_name, make", list(HUMAN_SIDE.items()))
@pytest.mark.parametrize("block", [b for k, b in UNKNOWN_FIELDS.items() if "tool" not in k], ids=lambda b: b["type"])
def test_unknown_fields_of_known_blocks_are_refused(block, class_name, make):
    with pytest.raises(InvalidConversationError, match="which the guard does not know"):
        rendered(make([{"type": "text", "text": "ok"}, block]))


PNG = base64.b64encode(png_bytes(make_image(40, 30))).decode()
DATA_URL = f"data:image/png;base64,{PNG}"
#: Every way a LangChain message holds an image: each reaches the guard as one image, and nothing else.
IMAGES: dict[str, dict[str, Any]] = {
    "openai image_url": {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "low"}},
    "openai image_url string": {"type": "image_url", "image_url": DATA_URL},
    "openai input_image": {"type": "input_image", "image_url": DATA_URL},
    "standard base64": {"type": "image", "base64": PNG, "mime_type": "image/png"},
    "standard data url": {"type": "image", "url": DATA_URL},
    "legacy v0 base64": {"type": "image", "source_type": "base64", "data": PNG, "mime_type": "image/png"},
    "legacy v0 url": {"type": "image", "source_type": "url", "url": DATA_URL},
    "anthropic base64": {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    "bedrock converse": {"image": {"format": "png", "source": {"bytes": PNG}}},
}


@pytest.mark.parametrize("class_name, make", list({**HUMAN_SIDE, **AI_SIDE}.items()))
@pytest.mark.parametrize("image", list(IMAGES.values()), ids=list(IMAGES))
def test_every_image_shape_reaches_the_guard_as_one_image(image, class_name, make):
    converted = message_to_openai(make([{"type": "text", "text": "What is this?"}, image]))
    conversation = parse_conversation([{"role": "user", "content": "q"}, converted])
    assert [img.size for img in conversation.images] == [(40, 30)]
    assert PNG not in rendered(make([{"type": "text", "text": "What is this?"}, image]))  # never as text


# -- through every adapter -------------------------------------------------------------------------------------


@pytest.fixture
def lg(test_model_dir):
    guard = planted_guard(test_model_dir)
    guard.backend.seen.clear()
    return guard


@tool
def search(q: str = "", query: str = "") -> str:
    """Search the web."""
    return "Nothing found."


def human_turn(name: str, text: str) -> list[BaseMessage]:
    return [HumanMessage("Hello."), HumanMessage(content=[{"type": "text", "text": "Read:"}, ANY_ROLE[name](text)])]


def ai_answer(name: str, text: str) -> AIMessage:
    return AIMessage(content=[{"type": "text", "text": "Here."}, {**AI_ONLY, **ANY_ROLE}[name](text)])


Run = Callable[[Any, Any], Any]


def agent(lg: Any, answer: Any) -> Any:
    model = scripted_model(answer, "Done.")
    return create_agent(model, tools=[search], middleware=[LlamaGuardMiddleware(lg, on_block="raise")])


#: Each adapter, sync and async, as ``run(guard, messages_in, answer)``.
ADAPTERS: dict[str, Callable[[Any, list[BaseMessage], Any], Any]] = {
    "middleware": lambda lg, messages, answer: agent(lg, answer).invoke({"messages": messages}),
    "middleware async": lambda lg, messages, answer: asyncio.run(agent(lg, answer).ainvoke({"messages": messages})),
    "guard_chain": lambda lg, messages, answer: guard_chain(RunnableLambda(lambda _: answer), lg).invoke(messages),
    "guard_chain async": lambda lg, messages, answer: asyncio.run(
        guard_chain(RunnableLambda(lambda _: answer), lg).ainvoke(messages)
    ),
    "callbacks": lambda lg, messages, answer: scripted_model(answer).invoke(
        messages, config={"callbacks": [LlamaGuardCallbackHandler(lg)]}
    ),
    "callbacks async": lambda lg, messages, answer: asyncio.run(
        scripted_model(answer).ainvoke(messages, config={"callbacks": [AsyncLlamaGuardCallbackHandler(lg)]})
    ),
}


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.parametrize("name", list(ANY_ROLE))
def test_every_input_block_through_every_adapter(lg, name, adapter):
    run = ADAPTERS[adapter]
    run(lg, human_turn(name, SAFE), "Fine.")
    with pytest.raises(UnsafeContentError, match="at input") as info:
        run(lg, human_turn(name, UNSAFE), "Fine.")
    assert info.value.verdict.categories == ["S9"]


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.parametrize("name", list(ANY_ROLE) + list(AI_ONLY))
def test_every_answer_block_through_every_adapter(lg, name, adapter):
    run = ADAPTERS[adapter]
    run(lg, [HumanMessage("Tell me.")], ai_answer(name, SAFE))
    with pytest.raises(UnsafeContentError, match="at output") as info:
        run(lg, [HumanMessage("Tell me.")], ai_answer(name, UNSAFE))
    assert info.value.verdict.categories == ["S9"]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
@pytest.mark.parametrize("name", list(ANY_ROLE))
def test_every_tool_result_block_through_the_tool_guard(lg, name, asynchronous):
    @tool
    def fetch(url: str) -> list:
        """Fetch a page as content blocks."""
        return [{"type": "text", "text": "Page:"}, ANY_ROLE[name](UNSAFE if "evil" in url else SAFE)]

    guarded = guard_tool(fetch, lg, on_block="raise")

    def call(url: str) -> Any:
        request = tool_call("fetch", {"url": url})
        return asyncio.run(guarded.ainvoke(request)) if asynchronous else guarded.invoke(request)

    call("https://good.example")
    with pytest.raises(UnsafeContentError, match="at tool_result") as info:
        call("https://evil.example")
    assert info.value.verdict.categories == ["S9"]


#: Fields of a streamed text part beside its text: a windowed stream checks only the text of plain-text chunks.
STREAMED_TEXT_FIELDS = {
    "annotations": {"annotations": [{"type": "citation", "title": UNSAFE}]},
    "extras": {"extras": {"note": UNSAFE}},
    "citations": {"citations": [{"type": "char_location", "cited_text": UNSAFE}]},
}


@pytest.mark.parametrize("mode", ["windowed", "buffered"])
@pytest.mark.parametrize("field", list(STREAMED_TEXT_FIELDS.values()), ids=list(STREAMED_TEXT_FIELDS))
def test_a_streamed_text_parts_other_fields_are_checked_before_release(lg, field, mode):
    def answer(_: Any) -> Iterator[AIMessageChunk]:
        for n in range(6):
            yield AIMessageChunk(content=[{"type": "text", "text": f"word{n} " * 5, **(field if n == 1 else {})}])

    chain = guard_chain(RunnableLambda(answer), lg, stream_mode=mode, window_size=20, window_overlap=5)
    released: list[Any] = []
    with pytest.raises(UnsafeContentError, match="at output"):
        for chunk in chain.stream("Tell me."):
            released.append(chunk)
    assert not any(UNSAFE in str(chunk.content) for chunk in released)


def test_past_the_search_budget_blocks_are_shown_whole_never_dropped(monkeypatch):
    """The raw-text check searches long texts for short ones within a budget (linear time); past it a block
    is shown whole, so every shape still reaches the guard."""
    from llamaguard_guardrails.langchain import _blocks

    monkeypatch.setattr(_blocks, "SEARCH_BUDGET", 0)
    for block_name, class_name, block, make in CASES:
        shown = rendered(make([{"type": "text", "text": "Before."}, block(UNSAFE)]))
        assert UNSAFE in shown, (block_name, class_name)
    many = HumanMessage(content=[{"type": "text", "text": "x", "extras": {f"k{n}": f"v{n}" for n in range(3000)}}])
    assert "v2999" in rendered(many)
