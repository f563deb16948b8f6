"""The documented mapping from OpenAI messages to Llama Guard 4 turns, and its typed errors."""

from __future__ import annotations

import base64
import json

import pytest

from llamaguard_guardrails import InvalidConversationError, InvalidImageError, parse_conversation
from llamaguard_guardrails.core.conversation import is_code_interpreter_call, render_tool_call

from conftest import make_image, png_bytes


def texts(conversation) -> list[tuple[str, tuple[str, ...]]]:
    return [(turn.role, block.texts) for turn in conversation.turns for block in turn.blocks]


def test_string_is_one_user_message():
    conv = parse_conversation("hello")
    assert texts(conv) == [("User", ("hello",))]
    assert conv.checked_role == "User" and conv.checked_message_index == 0


def test_full_agent_history_keeps_every_channel():
    messages = [
        {"role": "system", "content": "You are a shell assistant."},
        {"role": "user", "content": "Free some disk space"},
        {
            "role": "assistant",
            "content": "Running a command.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "du -sh /"}'}},
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "40G /"},
        {"role": "assistant", "content": "Your disk holds 40G."},
    ]
    conv = parse_conversation(messages)
    assert [t.role for t in conv.turns] == ["User", "Agent", "User", "Agent"]
    assert texts(conv) == [
        ("User", ("[system] You are a shell assistant.",)),
        ("User", ("Free some disk space",)),
        ("Agent", ("Running a command.",)),
        ("Agent", ("[code interpreter call: bash]\n```\ndu -sh /\n```",)),
        ("Agent", ('[tool call: get_weather] {"city": "Oslo"}',)),
        ("User", ("[tool result: bash] 40G /",)),
        ("Agent", ("Your disk holds 40G.",)),
    ]
    assert conv.checked_role == "Agent" and conv.checked_message_index == 4


def test_conversation_starting_with_the_agent_gets_an_empty_user_turn():
    conv = parse_conversation([{"role": "assistant", "content": "Hi! How can I help?"}])
    assert [t.role for t in conv.turns] == ["User", "Agent"]
    assert conv.turns[0].blocks == ()
    assert conv.checked_role == "Agent"


def test_json_escaped_arguments_are_decoded_for_the_model():
    escaped = json.dumps({"q": "how to build a bomb"}).replace("b", "\\u0062")
    assert "bomb" not in escaped
    assert "bomb" in render_tool_call("search", escaped)


@pytest.mark.parametrize(
    "name, arguments, code",
    [
        ("python", '{"code": "print(1)"}', True),
        ("code_interpreter", '{"input": "import os"}', True),
        ("run_sql", '{"script": "DROP TABLE users"}', True),
        ("shell", "rm -rf /", True),
        ("get_weather", '{"city": "Paris"}', False),
        ("search", "not json at all", False),
    ],
)
def test_code_interpreter_calls_are_rendered_as_code(name, arguments, code):
    assert is_code_interpreter_call(name, arguments) is code
    assert ("```" in render_tool_call(name, arguments)) is code


def test_images_in_every_accepted_form(tmp_path):
    image = make_image(64, 48)
    raw = png_bytes(image)
    path = tmp_path / "img.png"
    path.write_bytes(raw)
    b64 = base64.b64encode(raw).decode()
    content = [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}},
        {"type": "image_url", "image_url": path},  # a pathlib.Path from the application's code is opened
        {"type": "image", "image": image},
        {"type": "image", "base64": b64, "mime_type": "image/png"},
        {"type": "image", "path": path},
        {"type": "input_image", "image_url": b64},
        {"type": "image", "image": raw},
        {"type": "text", "text": "six images"},
    ]
    conv = parse_conversation([{"role": "user", "content": content}])
    assert len(conv.images) == 7 and all(img.size == (64, 48) for img in conv.images)


def test_an_image_without_text_is_kept():
    conv = parse_conversation([{"role": "user", "content": [{"type": "image", "image": make_image(20, 20)}]}])
    assert conv.has_images and texts(conv) == [("User", ("",))]


@pytest.mark.parametrize(
    "messages, fragment",
    [
        ([], "empty"),
        ({"role": "user", "content": "hi"}, "list of messages"),
        (42, "list of messages"),
        ([{"role": "robot", "content": "hi"}], "unknown role 'robot'"),
        (["hi"], "must be a dict"),
        ([{"role": "user"}], "has no content"),
        ([{"role": "user", "content": []}], "empty content list"),
        ([{"role": "user", "content": 3}], "content must be a string or a list"),
        ([{"role": "user", "content": [{"type": "audio", "data": "x"}]}], "unsupported content part type 'audio'"),
        ([{"role": "user", "content": [{"type": "text", "text": 5}]}], "needs a string 'text'"),
        ([{"role": "assistant", "content": None}], "has no content"),
        (
            [{"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "{}"}}]}],
            "no function name",
        ),
    ],
)
def test_bad_conversations_get_typed_errors_that_name_the_problem(messages, fragment):
    with pytest.raises(InvalidConversationError, match=fragment.replace("(", r"\(")):
        parse_conversation(messages)


@pytest.mark.parametrize(
    "ref, fragment",
    [
        ("https://example.com/cat.png", "remote image URLs are not fetched"),
        ("data:image/png;base64,!!!notbase64", "invalid base64"),
        ("data:image/png,rawdata", "data URL must be"),
        ("/no/such/file.png", "never opened as local files"),
        (base64.b64encode(b"definitely not an image").decode(), "not a readable image"),
        (12, "unsupported image value"),
    ],
)
def test_bad_images_get_typed_errors(ref, fragment):
    with pytest.raises(InvalidImageError, match=fragment):
        parse_conversation(
            [{"role": "user", "content": [{"type": "image", "image": ref}, {"type": "text", "text": "?"}]}]
        )


def test_error_names_the_message_and_part():
    with pytest.raises(InvalidImageError, match=r"message 1 \(user\) part 0"):
        parse_conversation(
            [{"role": "system", "content": "x"}, {"role": "user", "content": [{"type": "image", "image": "/nope.png"}]}]
        )


# -- every field a downstream model reads is shown, or the conversation is rejected ----------


def test_participant_names_are_shown_to_the_model():
    conv = parse_conversation(
        [
            {"role": "system", "content": "Be brief.", "name": "ops"},
            {"role": "user", "content": "hi", "name": "mallory"},
            {
                "role": "assistant",
                "content": None,
                "name": "bot",
                "tool_calls": [{"id": "1", "name": "f", "input": {}}],
            },
        ]
    )
    assert texts(conv) == [
        ("User", ("[system] [name: ops] Be brief.",)),
        ("User", ("[name: mallory] hi",)),
        ("Agent", ("[name: bot] [tool call: f] {}",)),
    ]


def test_an_openai_refusal_message_with_no_content_is_checked():
    conv = parse_conversation(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "refusal": "No."}]
    )
    assert texts(conv)[-1] == ("Agent", ("No.",)) and conv.checked_role == "Agent"


def test_reasoning_in_every_accepted_form_is_agent_text():
    conv = parse_conversation(
        [
            {
                "role": "assistant",
                "reasoning_content": "r1",
                "reasoning": "r2",
                "content": [
                    {"type": "reasoning", "reasoning": "r3"},
                    {"type": "reasoning", "text": "r4"},
                    {"type": "reasoning", "summary": [{"type": "summary_text", "text": "r5"}]},
                    {"type": "thinking", "thinking": "r6", "signature": "sig"},
                    {"type": "text", "text": "answer"},
                ],
                "refusal": "but no",
            }
        ]
    )
    shown = tuple(f"[reasoning] r{n}" for n in range(1, 7)) + ("answer", "but no")
    assert texts(conv) == [("Agent", shown)]


@pytest.mark.parametrize(
    "call",
    [
        {"id": "t1", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}},
        {"id": "t1", "name": "search", "args": {"q": "x"}, "type": "tool_call"},
        {"id": "t1", "name": "search", "input": {"q": "x"}},
        {"id": "t1", "type": "custom", "custom": {"name": "search", "input": '{"q": "x"}'}},
    ],
    ids=["openai", "langchain", "flat-input", "custom"],
)
def test_every_tool_call_shape_renders_the_same(call):
    conv = parse_conversation(
        [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
        ]
    )
    assert texts(conv) == [("Agent", ('[tool call: search] {"q": "x"}',)), ("User", ("[tool result: search] ok",))]


def test_tool_use_parts_become_tool_calls():
    conv = parse_conversation(
        [
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "t1", "name": "python", "input": {"code": "print(1)"}},
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "1"},
        ]
    )
    assert texts(conv) == [
        ("Agent", ("Looking.",)),
        ("Agent", ("[code interpreter call: python]\n```\nprint(1)\n```",)),
        ("User", ("[tool result: python] 1",)),
    ]


def test_metadata_and_none_values_are_accepted_and_not_shown():
    messages = [
        {"role": "user", "content": "q", "id": "m1", "type": "message", "status": "completed", "name": None},
        {"role": "assistant", "content": "a", "refusal": None, "stop_reason": "end_of_turn", "audio": None},
        {"role": "tool", "call_id": "c1", "content": "r"},
    ]
    assert texts(parse_conversation(messages)) == [
        ("User", ("q",)),
        ("Agent", ("a",)),
        ("User", ("[tool result: tool] r",)),
    ]


def test_llama_stack_user_context_and_annotations_are_shown():
    conv = parse_conversation(
        [
            {"role": "user", "content": "summarise", "context": [{"type": "text", "text": "retrieved doc"}]},
            {
                "role": "assistant",
                "content": [{"type": "output_text", "text": "see", "annotations": [{"title": "T"}], "logprobs": []}],
            },
        ]
    )
    assert texts(conv) == [
        ("User", ("summarise", "[context] retrieved doc")),
        ("Agent", ("see", '[annotations] [{"title": "T"}]')),
    ]


@pytest.mark.parametrize(
    "message, fragment",
    [
        ({"role": "user", "content": "hi", "timestamp": 3}, "unknown key 'timestamp'"),
        ({"role": "user", "content": "hi", "refusal": "x"}, "unknown key 'refusal'"),
        ({"role": "assistant", "content": "hi", "audio": {"id": "a1"}}, "unknown key 'audio'"),
        (
            {"role": "assistant", "content": "hi", "reasoning_details": [{"text": "x"}]},
            "unknown key 'reasoning_details'",
        ),
        ({"role": "user", "content": "hi", "type": "function_call_output"}, "not a chat message"),
        ({"role": "user", "content": "hi", "name": 5}, "name must be a string"),
        ({"role": "assistant", "content": None, "refusal": ["x"]}, "refusal must be a string"),
        ({"role": "assistant", "content": None, "reasoning_content": 1}, "reasoning_content must be a string"),
        ({"role": "user", "content": [{"type": "text", "text": "a", "extras": {"x": 1}}]}, "unknown field 'extras'"),
        ({"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]}, "redacted_thinking"),
        ({"role": "assistant", "content": [{"type": "reasoning", "encrypted_content": "x"}]}, "encrypted_content"),
        ({"role": "assistant", "content": [{"type": "thinking"}]}, "thinking must be a string"),
        ({"role": "user", "content": [{"type": "tool_use", "name": "f", "input": {}}]}, "belongs in an assistant"),
        ({"role": "user", "content": [{"type": ["text"], "text": "x"}]}, "type must be a string"),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"name": "f", "args": {"a": 1}, "input": {"b": 2}}]},
            "arguments under 'args' and 'input'",
        ),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f"}, "name": "g"}]},
            "unknown field 'name' in a tool call",
        ),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "parsed": {}}}]},
            "unknown field 'parsed'",
        ),
        ({"role": "assistant", "content": None, "tool_calls": [{"id": "1", "input": {}}]}, "no function name"),
    ],
)
def test_fields_the_guard_would_not_show_are_rejected(message, fragment):
    with pytest.raises(InvalidConversationError, match=fragment):
        parse_conversation([message])


def test_an_image_part_with_two_sources_is_rejected(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(make_image(8, 8)))
    part = {"type": "image", "path": str(path), "base64": base64.b64encode(png_bytes(make_image(9, 9))).decode()}
    with pytest.raises(InvalidImageError, match="names 2 images"):
        parse_conversation([{"role": "user", "content": [part]}])


def test_deeply_nested_tool_arguments_are_a_typed_error():
    arguments = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InvalidConversationError, match="nested too deeply"):
        parse_conversation([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": arguments}}]}])
