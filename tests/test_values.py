"""core/values.py: the one way client values become dicts and model-readable text, and unknown fields are refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from llamaguard_guardrails.core.errors import InvalidConversationError
from llamaguard_guardrails.core.values import json_text, plain_dict, reject_unknown_fields

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(JSON)
def test_json_values_are_written_as_json_the_model_can_read_back(value):
    text = json_text(value)
    assert text == value if isinstance(value, str) else json.loads(text) == value


@pytest.mark.parametrize("value", [b"raw bytes", {"a set"}, ValueError("an object")])
def test_values_json_cannot_hold_are_shown_as_text_never_dropped(value):
    assert str(value) in json_text({"x": value})


def test_keys_json_cannot_hold_show_the_whole_value_as_text():
    assert json_text({("a", "b"): "secret"}) == str({("a", "b"): "secret"})


def test_a_value_json_cannot_write_is_a_typed_error():
    circular: list = []
    circular.append(circular)
    with pytest.raises(InvalidConversationError, match="cannot be shown to the model"):
        json_text(circular)


class Message(BaseModel):
    role: str
    content: str | None = None


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"role": "user", "content": None}, {"role": "user", "content": None}), (Message(role="user"), {"role": "user"})],
)
def test_dicts_and_pydantic_models_are_read_alike(value, expected):
    assert plain_dict(value, "message 0") == expected


@pytest.mark.parametrize("value", ["hi", ["role", "user"], 3, None])
def test_anything_else_is_a_typed_error_naming_where(value):
    with pytest.raises(InvalidConversationError, match="message 3 must be a dict"):
        plain_dict(value, "message 3")


def test_an_unknown_field_with_a_value_is_refused_and_named():
    reject_unknown_fields({"name": "f", "extra": None}, {"name"}, "call 0", "tool call")  # None carries nothing
    with pytest.raises(InvalidConversationError, match="call 0: unknown field 'extra' in a tool call"):
        reject_unknown_fields({"name": "f", "extra": "x"}, {"name"}, "call 0", "tool call")
