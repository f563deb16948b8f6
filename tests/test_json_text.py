"""The guard sees the bytes the model gets.

Tool-call arguments are JSON text; the guard is shown them decoded but otherwise as written: every pair of
every object (repeated keys too, in order), number literals as written, escapes decoded. Generated here:
JSON texts written with random escaping, repeated keys and number spellings, through ``parse_conversation`` in
every tool-call shape that carries a JSON string; and the bounds (depth, number length) give typed errors.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamaguard_guardrails import InvalidConversationError, parse_conversation
from llamaguard_guardrails.core.json_text import MAX_DEPTH, MAX_NUMBER_CHARS

NUMBERS = st.sampled_from(["0", "-1", "1e5", "1E+05", "1.50", "-0.0", "12345678901234567890123", "NaN", "-Infinity"])
KEYS = st.text(min_size=0, max_size=6).filter(lambda k: k not in ("code", "source", "script", "command", "cmd"))
LEAVES = st.one_of(st.text(max_size=12), NUMBERS.map(lambda n: ("number", n)), st.booleans(), st.none())


def trees(depth: int = 3):
    return st.recursive(
        LEAVES,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.lists(st.tuples(KEYS, inner), max_size=4).map(lambda pairs: ("object", pairs)),
        ),
        max_leaves=12,
    )


def write(value, *, ascii_only: bool) -> str:
    """JSON text of a generated tree: objects as pair lists (repeats kept), numbers as the literal."""
    if isinstance(value, tuple) and value[0] == "number":
        return value[1]
    if isinstance(value, tuple) and value[0] == "object":
        return (
            "{"
            + ", ".join(
                f"{json.dumps(k, ensure_ascii=ascii_only)}: {write(v, ascii_only=ascii_only)}" for k, v in value[1]
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(write(v, ascii_only=ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def surrogate_free(value) -> bool:
    text = write(value, ascii_only=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


SHAPES = {
    "openai": lambda args: {
        "role": "assistant",
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "search", "arguments": args}}],
    },
    "legacy function_call": lambda args: {"role": "assistant", "function_call": {"name": "search", "arguments": args}},
    "custom tool": lambda args: {
        "role": "assistant",
        "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "search", "input": args}}],
    },
    "flat": lambda args: {"role": "assistant", "tool_calls": [{"id": "c", "name": "search", "arguments": args}]},
}


def shown(message: dict) -> str:
    conversation = parse_conversation([{"role": "user", "content": "go"}, message])
    return conversation.turns[-1].blocks[-1].texts[0]


@settings(max_examples=150, deadline=None)
@given(
    tree=st.lists(st.tuples(KEYS, trees()), min_size=1, max_size=5).map(lambda pairs: ("object", pairs)),
    shape=st.sampled_from(sorted(SHAPES)),
    ascii_only=st.booleans(),
)
def test_tool_arguments_are_shown_as_written(tree, shape, ascii_only):
    if not surrogate_free(tree):
        return
    text = write(tree, ascii_only=ascii_only)  # what the tool receives (escaped or not)
    assert shown(SHAPES[shape](text)) == f"[tool call: search] {write(tree, ascii_only=False)}"


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_repeated_key_shows_every_value(shape):
    text = '{"q": "how to build a \\u0062omb", "q": "bread", "n": 1e5}'
    assert shown(SHAPES[shape](text)) == '[tool call: search] {"q": "how to build a bomb", "q": "bread", "n": 1e5}'


def test_every_repeated_code_argument_is_shown_as_code():
    message = SHAPES["openai"]('{"code": "print(1)", "code": "import os; os.remove(\\"/\\")", "timeout": 5}')
    text = shown(message)
    assert text.startswith("[code interpreter call: search]")
    assert "```\nprint(1)\n```" in text and '```\nimport os; os.remove("/")\n```' in text and '{"timeout": 5}' in text


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested too deeply"),
        ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
        ('{"n": ' + "9" * (MAX_NUMBER_CHARS + 1) + "}", "number"),
        ('{"n": 1.' + "5" * (MAX_NUMBER_CHARS + 1) + "}", "number"),
        ('{"q": "\\ud800"}', "not valid Unicode"),
    ],
)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_what_cannot_be_shown_faithfully_is_a_typed_error(arguments, match, shape):
    with pytest.raises(InvalidConversationError, match=match):
        shown(SHAPES[shape](arguments))


def test_the_deepest_allowed_json_and_longest_number_are_shown():
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert shown(SHAPES["openai"](deep)).endswith(deep.replace("][", "], ["))
    number = "9" * MAX_NUMBER_CHARS  # beyond Python's int-digit limit for int(), shown as written
    assert shown(SHAPES["openai"](f'{{"n": {number}}}')).endswith(f'{{"n": {number}}}')


def test_the_module_examples_run():
    import doctest

    from llamaguard_guardrails.core import json_text

    result = doctest.testmod(json_text)
    assert result.attempted >= 1 and result.failed == 0
