"""The core's message builders: what every adapter hands the guard, and the rule that adapters use them."""

from __future__ import annotations

import ast
import base64
import io
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from PIL import Image

from llamaguard_guardrails.core import messages as build
from llamaguard_guardrails.core.conversation import parse_conversation
from llamaguard_guardrails.core.errors import InvalidConversationError
from llamaguard_guardrails.langchain.convert import message_to_openai, tool_call_message, tool_result_message

PACKAGE = Path(__file__).resolve().parents[1] / "llamaguard_guardrails"


def blocks(messages):
    return [
        (turn.role, block.kind, block.texts) for turn in parse_conversation(messages).turns for block in turn.blocks
    ]


def test_a_built_tool_call_and_result_are_shown_with_decoded_arguments():
    call = build.tool_call("run_shell", {"cmd": "echo \u0062omb"}, call_id="c1")
    assert call == {
        "id": "c1",
        "type": "function",
        "function": {"name": "run_shell", "arguments": '{"cmd": "echo bomb"}'},
    }
    shown = blocks(
        [
            {"role": "user", "content": "hi"},
            build.assistant(tool_calls=[call]),
            build.tool_result("done", name="run_shell", call_id="c1"),
        ]
    )
    assert [kind for _, kind, _ in shown] == ["user", "tool_call", "tool_result"]
    assert "bomb" in " ".join(shown[1][2]) and shown[2][2][0].startswith("[tool result: run_shell]")


def test_the_module_examples_hold():
    import doctest

    result = doctest.testmod(build)
    assert result.attempted >= 2 and result.failed == 0


def test_arguments_text_keeps_json_text_and_writes_anything_else():
    assert build.arguments_text('{"a": 1}') == '{"a": 1}'
    assert build.arguments_text(None) == "{}"
    assert build.arguments_text({"when": Path("x")}) == '{"when": "x"}'


def test_a_refusal_only_message_is_checked_as_agent_text():
    assert blocks([{"role": "user", "content": "q"}, build.assistant(refusal="no way")])[-1] == (
        "Agent",
        "assistant",
        ("no way",),
    )


def test_the_builders_build_and_the_parser_refuses_a_nameless_call():
    with pytest.raises(InvalidConversationError):
        parse_conversation([{"role": "user", "content": "q"}, build.assistant(tool_calls=[build.tool_call("", "{}")])])


def test_an_image_part_holds_the_same_pixels_from_bytes_base64_or_a_path(tmp_path):
    image = Image.new("RGB", (8, 8), (200, 10, 10))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path = tmp_path / "red.png"
    path.write_bytes(buffer.getvalue())
    sources = [buffer.getvalue(), base64.b64encode(buffer.getvalue()).decode(), path]
    pixels = []
    for source in sources:
        (img,) = parse_conversation([{"role": "user", "content": [build.image_part(source)]}]).images
        pixels.append(img.convert("RGB").tobytes())
    assert pixels[0] == pixels[1] == pixels[2] == image.tobytes()


def test_langchain_tool_messages_come_out_as_the_core_builders_make_them():
    assert tool_call_message("search", {"q": "x"}, "c9") == build.assistant(
        tool_calls=[build.tool_call("search", {"q": "x"}, call_id="c9")]
    )
    assert tool_result_message("search", "found", "c9") == build.tool_result("found", name="search", call_id="c9")
    converted = message_to_openai(AIMessage("", tool_calls=[{"name": "search", "args": {"q": "x"}, "id": "c9"}]))
    assert converted["tool_calls"] == [build.tool_call("search", {"q": "x"}, call_id="c9")]
    assert message_to_openai(ToolMessage("found", tool_call_id="c9", name="search"))["role"] == "tool"


def hand_built_calls(path: Path) -> list[int]:
    """Lines of dict literals that build a message with ``tool_calls`` or a tool call naming its function.

    (An empty ``{"function": {}}`` that stream deltas are folded into names nothing: it is not a built call, and
    neither is the ``update=`` of a framework message's ``model_copy``.)
    """
    lines = []
    tree = ast.parse(path.read_text())
    # ``message.model_copy(update={"tool_calls": ...})`` edits a framework message's fields: not a core message.
    updates = {id(k.value) for k in ast.walk(tree) if isinstance(k, ast.keyword) and k.arg == "update"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and id(node) not in updates:
            items = {k.value: v for k, v in zip(node.keys, node.values, strict=True) if isinstance(k, ast.Constant)}
            function = items.get("function")
            names_one = isinstance(function, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "name" for k in function.keys
            )
            if "tool_calls" in items or ("type" in items and names_one):
                lines.append(node.lineno)
    return lines


#: Sample conversations written the way users write them (the demo shows the input format).
SAMPLE_DATA = {"cli/demo.py"}


@pytest.mark.parametrize("adapter", ["langchain", "llama_stack", "scale", "evaluation", "cli"])
def test_no_adapter_builds_a_tool_call_by_hand(adapter):
    found = {str(p.relative_to(PACKAGE)): hand_built_calls(p) for p in (PACKAGE / adapter).rglob("*.py")}
    assert {path: lines for path, lines in found.items() if lines and path not in SAMPLE_DATA} == {}
    assert adapter != "cli" or hand_built_calls(PACKAGE / "cli/demo.py")  # the scan sees literal calls
