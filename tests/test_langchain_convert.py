"""LangChain values -> the OpenAI-format conversation the guard checks: nothing dropped, images kept."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate

from llamaguard_guardrails import InvalidConversationError, InvalidImageError, parse_conversation
from llamaguard_guardrails.langchain import message_to_openai, to_messages
from llamaguard_guardrails.langchain.convert import text_of, tool_call_message, tool_result_message

from conftest import make_image, png_bytes

PNG = base64.b64encode(png_bytes(make_image(40, 30))).decode()


def test_plain_inputs_become_user_messages_and_outputs_assistant_messages():
    assert to_messages("hi") == [{"role": "user", "content": "hi"}]
    assert to_messages("hi", default_role="assistant") == [{"role": "assistant", "content": "hi"}]
    assert to_messages({"question": "hi"}) == [{"role": "user", "content": "hi"}]
    assert to_messages({"question": "hi", "lang": "fr"}) == [{"role": "user", "content": "question: hi\nlang: fr"}]
    assert to_messages({"q": "hi", "input": "other"}, key="input") == [{"role": "user", "content": "other"}]
    with pytest.raises(InvalidConversationError, match="no 'missing' key"):
        to_messages({"q": "hi"}, key="missing")


def test_prompt_values_message_lists_tuples_and_openai_dicts():
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")]).invoke({"q": "hi"})
    assert to_messages(prompt) == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    mixed = [("human", "a"), {"role": "assistant", "content": "b"}, HumanMessage("c")]
    assert [m["role"] for m in to_messages(mixed)] == ["user", "assistant", "user"]
    state = {"messages": [HumanMessage("q"), AIMessage("a")], "structured_response": {"plan": "b"}, "none": None}
    assert to_messages(state)[-2:] == [
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": 'structured_response: {"plan": "b"}'},
    ]
    assert parse_conversation(to_messages(state)).checked_role == "Agent"


def test_dict_with_message_history_keeps_the_messages_as_context():
    value = {"history": [HumanMessage("earlier"), AIMessage("reply")], "question": "now?"}
    assert [m["content"] for m in to_messages(value)] == ["earlier", "reply", "now?"]


def test_tool_calls_and_tool_results_keep_names_ids_and_arguments():
    ai = AIMessage("", tool_calls=[{"name": "python", "args": {"code": "print(1)"}, "id": "c1"}])
    tool = ToolMessage("1", tool_call_id="c1", name="python")
    converted = [message_to_openai(ai), message_to_openai(tool)]
    assert converted[0]["content"] is None
    assert converted[0]["tool_calls"][0]["function"] == {"name": "python", "arguments": '{"code": "print(1)"}'}
    assert converted[1] == {"role": "tool", "content": "1", "tool_call_id": "c1", "name": "python"}
    conversation = parse_conversation([{"role": "user", "content": "run it"}, *converted])
    assert conversation.turns[1].blocks[0].texts[0].startswith("[code interpreter call: python]")


def test_server_side_code_interpreter_calls_are_checked_as_code():
    ai = AIMessage(
        content=[
            {"type": "text", "text": "Running it."},
            {"type": "server_tool_call", "id": "s1", "name": "code_interpreter", "args": {"code": "import os"}},
            {"type": "server_tool_result", "tool_call_id": "s1", "status": "success", "output": "done"},
        ]
    )
    converted = message_to_openai(ai)
    assert converted["tool_calls"][0]["function"]["name"] == "code_interpreter"
    assert "[server tool result] done" in converted["content"]
    texts = [b.texts[0] for b in parse_conversation([converted]).turns[-1].blocks]
    assert any(t.startswith("[code interpreter call: code_interpreter]\n```\nimport os") for t in texts)


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image", "base64": PNG, "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": PNG, "mime_type": "image/png"},
    ],
    ids=["openai-image_url", "standard-base64", "legacy-v0"],
)
def test_image_blocks_of_every_format_arrive_as_images(block):
    message = HumanMessage(content=[{"type": "text", "text": "what is this?"}, block])
    conversation = parse_conversation([message_to_openai(message)])
    assert conversation.has_images
    assert conversation.images[0].size == (40, 30)


def test_unreadable_content_is_an_error_never_dropped():
    with pytest.raises(InvalidImageError, match="provider file id"):
        message_to_openai(HumanMessage(content=[{"type": "image", "file_id": "file-1"}]))
    with pytest.raises(InvalidConversationError, match="cannot check 'audio'"):
        message_to_openai(HumanMessage(content=[{"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}]))
    remote = HumanMessage(content=[{"type": "image", "url": "https://example.com/a.png"}])
    with pytest.raises(InvalidImageError, match="remote image URLs are not fetched"):
        parse_conversation([message_to_openai(remote)])
    with pytest.raises(InvalidConversationError, match="cannot check a value of type int"):
        to_messages(42)
    with pytest.raises(InvalidConversationError, match="empty"):
        to_messages([])


def test_unknown_provider_blocks_are_refused_not_read_as_their_text_alone():
    message = HumanMessage(content=[{"type": "custom_thing", "text": "shown words", "payload": "hidden words"}])
    with pytest.raises(InvalidConversationError, match="'custom_thing' content block"):
        message_to_openai(message)


def test_system_and_reasoning_content_is_kept():
    assert message_to_openai(SystemMessage("rules"))["role"] == "system"
    ai = AIMessage(content=[{"type": "reasoning", "reasoning": "thinking"}, {"type": "text", "text": "answer"}])
    assert shown(ai) == "[reasoning] thinking\nanswer"


def shown(message) -> str:
    """Everything of ``message`` the guard's model reads (the texts of its blocks, after a user turn)."""
    conversation = parse_conversation([{"role": "user", "content": "q"}, message_to_openai(message)])
    return "\n".join(t for role, block in conversation.blocks()[1:] for t in block.texts)


WORD = "plutonium"
CALL = {"name": "lookup", "args": {"q": WORD}, "id": "c1", "type": "tool_call"}
OPENAI_CALL = {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "plutonium"}'}}
#: Every field of a LangChain message that reaches a model, a tool or a user, each holding WORD.
FIELDS = {
    "refusal": AIMessage("", additional_kwargs={"refusal": WORD}),
    "refusal_next_to_content": AIMessage("Sure.", additional_kwargs={"refusal": WORD}),
    "reasoning_content": AIMessage("ok", additional_kwargs={"reasoning_content": WORD}),
    "reasoning_content_beside_a_reasoning_block": AIMessage(
        [{"type": "reasoning", "reasoning": "fine"}, "ok"], additional_kwargs={"reasoning_content": WORD}
    ),
    "reasoning_block_v1": AIMessage(
        [{"type": "reasoning", "reasoning": WORD}, {"type": "text", "text": "ok"}],
        response_metadata={"output_version": "v1"},
    ),
    "openai_reasoning_summary": AIMessage(
        [{"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": WORD}]}],
        response_metadata={"model_provider": "openai"},
    ),
    "openai_reasoning_kwarg": AIMessage(
        "ok", additional_kwargs={"reasoning": {"summary": [{"type": "summary_text", "text": WORD}]}}
    ),
    "anthropic_thinking": AIMessage(
        [{"type": "thinking", "thinking": WORD, "signature": "sig"}, {"type": "text", "text": "ok"}],
        response_metadata={"model_provider": "anthropic"},
    ),
    "thinking_without_provider": AIMessage([{"type": "thinking", "thinking": WORD, "signature": "sig"}]),
    "streamed_reasoning_chunks": AIMessageChunk(content="", additional_kwargs={"reasoning_content": "pluto"})
    + AIMessageChunk(content="ok", additional_kwargs={"reasoning_content": "nium"}),
    "streamed_reasoning_blocks": AIMessageChunk(content=[{"type": "reasoning", "reasoning": "pluto", "index": 0}])
    + AIMessageChunk(content=[{"type": "reasoning", "reasoning": "nium", "index": 0}]),
    "ai_name": AIMessage("ok", name=WORD),
    "human_name": HumanMessage("ok", name=WORD),
    "system_name": SystemMessage("ok", name=WORD),
    "tool_calls": AIMessage("", tool_calls=[CALL]),
    "invalid_tool_calls": AIMessage(
        "", invalid_tool_calls=[{"name": "lookup", "args": '{"q": "plutonium"', "id": "c1", "error": "bad JSON"}]
    ),
    "invalid_beside_valid_tool_calls": AIMessage(
        "",
        tool_calls=[{**CALL, "args": {}}],
        invalid_tool_calls=[{"name": "lookup", "args": WORD, "id": "c9", "error": "bad JSON"}],
    ),
    "server_tool_call": AIMessage(
        [{"type": "server_tool_call", "id": "s1", "name": "web_search", "args": {"q": WORD}}]
    ),
    "additional_kwargs_tool_calls": AIMessage("", additional_kwargs={"tool_calls": [OPENAI_CALL]}),
    "additional_kwargs_tool_calls_beside_tool_calls": AIMessage(
        "", tool_calls=[{**CALL, "args": {}}], additional_kwargs={"tool_calls": [OPENAI_CALL]}
    ),
    "function_call": AIMessage("", additional_kwargs={"function_call": {"name": "lookup", "arguments": WORD}}),
    "tool_call_chunk_without_name": AIMessageChunk(
        content="", tool_call_chunks=[{"name": None, "args": '{"q": "plutonium"}', "id": None, "index": 0}]
    ),
    "refusal_block": AIMessage([{"type": "refusal", "refusal": WORD}]),
    "text_annotations": AIMessage(
        [{"type": "text", "text": "ok", "annotations": [{"type": "citation", "title": WORD, "url": "https://x"}]}]
    ),
    "other_additional_kwargs": AIMessage("ok", additional_kwargs={"provider_note": WORD}),
    "human_additional_kwargs": HumanMessage("ok", additional_kwargs={"extra": {"text": WORD}}),
}


@pytest.mark.parametrize("message", list(FIELDS.values()), ids=list(FIELDS))
def test_every_field_a_model_tool_or_user_receives_is_shown_to_the_guard(message):
    assert WORD in shown(message)


def test_refusal_only_messages_keep_no_content_and_names_are_shown_with_their_message():
    converted = message_to_openai(AIMessage("", additional_kwargs={"refusal": "I can't."}))
    assert converted == {"role": "assistant", "refusal": "I can't."}
    assert shown(HumanMessage("hello", name="mallory")) == "[name: mallory] hello"


@pytest.mark.parametrize(
    "message, error",
    [
        (AIMessage("ok", additional_kwargs={"audio": {"id": "a1", "data": "AAAA", "transcript": "hi"}}), "audio"),
        (AIMessage([{"type": "reasoning", "reasoning": "", "encrypted_content": "gAAA"}]), "encrypted"),
        (AIMessage([{"type": "redacted_thinking", "data": "EqQB"}]), "redacted_thinking"),
        (AIMessage("ok", additional_kwargs={"refusal": ["no"]}), "refusal"),
        (AIMessage("", additional_kwargs={"tool_calls": [{"id": "x"}]}), "function name"),
    ],
    ids=["audio-output", "encrypted-reasoning", "redacted-thinking", "non-string-refusal", "nameless-kwarg-call"],
)
def test_fields_the_guard_cannot_read_raise(message, error):
    with pytest.raises(InvalidConversationError, match=error):
        shown(message)


def test_text_of_stream_chunks():
    assert text_of("abc") == "abc"
    assert text_of(AIMessageChunk(content="abc")) == "abc"
    assert (
        text_of(AIMessageChunk(content="", tool_call_chunks=[{"name": "x", "args": "{", "id": "1", "index": 0}]))
        is None
    )
    assert text_of({"answer": "abc"}) is None


def test_tool_messages_for_tool_checks():
    call = tool_call_message("bash", {"command": "ls"}, "c9")
    result = tool_result_message("bash", ToolMessage("file.txt", tool_call_id="c9"), "c9")
    assert result == {"role": "tool", "content": "file.txt", "tool_call_id": "c9", "name": "bash"}
    assert tool_result_message("f", {"rows": 2})["content"] == '{"rows": 2}'
    conversation = parse_conversation([call, result])
    assert conversation.checked_role == "User"


def test_import_without_langchain_says_how_to_install():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["langchain_core"] = None
        try:
            import llamaguard_guardrails.langchain
        except ImportError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert 'pip install "llamaguard-guardrails[langchain]"' in out.stdout


@pytest.mark.parametrize("field", ["tool_calls", "tool_call_chunks", "invalid_tool_calls"])
@pytest.mark.parametrize("value", ["0", ["0"], [1], {"name": "x"}, [None]], ids=repr)
def test_a_tool_call_field_that_is_not_a_list_of_dicts_is_a_typed_error(field, value):
    """Message classes that allow extra fields take any value in a tool-call field (found by tests/security's fuzz)."""
    message = HumanMessage("hi", **{field: value})
    if getattr(message, field, None) in (None, [], ""):
        pytest.skip("LangChain did not keep the value")
    with pytest.raises(InvalidConversationError, match=f"{field} must be a list of tool-call dicts"):
        message_to_openai(message)
