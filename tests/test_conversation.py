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
