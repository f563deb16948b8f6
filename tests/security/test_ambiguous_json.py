"""JSON that carries content is read one way only: what readers may take differently is refused, never guessed.

The served guard (a 400), ``moderate`` and ``evaluate`` rows (invalid rows), conversation files (exit 2) and
policy files (``InvalidPolicyError``) all read it with ``core.json_text.loads_unambiguous``.

A repeated key is generated in every object of valid bodies of each endpoint (the top level, a message, a
content part, an image URL, a tool call, the policy, its custom categories), with the same value and with another
one; ``NaN``/``Infinity`` in each number's place; nesting past the parser's limit. Each is refused, saying what to
change, and the server goes on serving.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llamaguard_guardrails import LlamaGuard
from llamaguard_guardrails.core.json_text import loads_unambiguous as loads
from llamaguard_guardrails.serve.app import create_app
from llamaguard_guardrails.serve.background import BackgroundServer
from llamaguard_guardrails.serve.settings import ServeSettings
from llamaguard_guardrails.testing import keyword_rule, scripted_guard

from conftest import make_image, png_bytes

PIXEL = "data:image/png;base64,"


def _image_url() -> str:
    import base64

    return PIXEL + base64.b64encode(png_bytes(make_image(8, 8))).decode()


def bodies() -> dict[str, tuple[str, Any]]:
    """(endpoint, a valid body) of each shape the server takes."""
    image = _image_url()
    call = {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q": "bread"}'}}
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": image}}],
        },
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "Bread is flour and water."},
    ]
    policy = {"threshold": 0.4, "custom_categories": {"S15": "Medical advice.", "S16": "Legal advice."}}
    return {
        "moderations, a string": ("/v1/moderations", {"input": "How do I bake bread?", "model": "llama-guard-4"}),
        "moderations, parts": (
            "/v1/moderations",
            {"input": [{"type": "text", "text": "this?"}, {"type": "image_url", "image_url": {"url": image}}]},
        ),
        "classify": ("/v1/guard/classify", {"messages": messages, "policy": policy}),
        "classify_batch": ("/v1/guard/classify_batch", {"conversations": ["hi", messages], "policy": policy}),
    }


def render(value: Any, target: tuple[Any, ...], repeat: str, path: tuple[Any, ...] = ()) -> str:
    """``value`` as JSON text, the object at ``target`` with its first key written twice (``repeat``: the second
    time with the ``"same"`` value, or ``"another"`` one)."""
    if isinstance(value, dict):
        items = [f"{json.dumps(k)}: {render(v, target, repeat, (*path, k))}" for k, v in value.items()]
        if path == target:
            key, first = next(iter(value.items()))
            other = first if repeat == "same" else "bread" if not isinstance(first, str) else first + " and bread"
            items.insert(0, f"{json.dumps(key)}: {json.dumps(other)}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v, target, repeat, (*path, n)) for n, v in enumerate(value)) + "]"
    return json.dumps(value)


def objects(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every object in ``value``."""
    if isinstance(value, dict):
        yield path
        for k, v in value.items():
            yield from objects(v, (*path, k))
    elif isinstance(value, list):
        for n, v in enumerate(value):
            yield from objects(v, (*path, n))


def numbers(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from numbers(v, (*path, k))
    elif isinstance(value, list):
        for n, v in enumerate(value):
            yield from numbers(v, (*path, n))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path


def repeated_key_cases() -> list[Any]:
    cases = []
    for name, (endpoint, body) in bodies().items():
        for target in objects(body):
            for repeat in ("same", "another"):
                where = ".".join(map(str, target)) or "top"
                cases.append(pytest.param(endpoint, render(body, target, repeat), id=f"{name}|{where}|{repeat}"))
    return cases


@pytest.fixture(scope="module")
def server(test_model_dir):
    guard: LlamaGuard = scripted_guard(test_model_dir, keyword_rule("bomb"), cache_size=0)
    with BackgroundServer(create_app(guard, ServeSettings(max_custom_categories=4))) as s:
        yield s
    guard.close()


def post(server: Any, endpoint: str, text: str) -> httpx.Response:
    return httpx.post(f"{server.url}{endpoint}", content=text, headers={"content-type": "application/json"})


@pytest.mark.parametrize("name", list(bodies()))
def test_the_valid_bodies_are_served(server, name):
    endpoint, body = bodies()[name]
    assert post(server, endpoint, json.dumps(body)).status_code == 200


@pytest.mark.parametrize(("endpoint", "text"), repeated_key_cases())
def test_a_repeated_key_anywhere_is_refused(server, endpoint, text):
    response = post(server, endpoint, text)
    assert response.status_code == 400, response.text
    assert "appears twice in one object" in response.json()["error"]["message"]
    assert post(server, "/v1/moderations", '{"input": "still serving?"}').status_code == 200


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("name", [n for n, (_, b) in bodies().items() if any(numbers(b))])
def test_nan_and_infinity_are_refused(server, name, constant):
    endpoint, body = bodies()[name]
    for path in numbers(body):
        text = json.dumps(body)
        marker = json.dumps(_get(body, path))
        assert marker in text
        response = post(server, endpoint, text.replace(f'"threshold": {marker}', f'"threshold": {constant}'))
        assert response.status_code == 400 and "not a JSON value" in response.json()["error"]["message"]


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@pytest.mark.parametrize("depth", [5_000, 200_000])
def test_runaway_nesting_is_refused(server, depth):
    response = post(server, "/v1/guard/classify", '{"messages": ' + "[" * depth + "]" * depth + "}")
    assert response.status_code == 400
    assert post(server, "/v1/moderations", '{"input": "still serving?"}').status_code == 200


@pytest.mark.parametrize("where", ["top", "message", "policy"])
def test_an_integer_too_long_to_read_is_a_json_error_and_a_400(server, where):
    """Python refuses to convert an integer of over 4,300 digits with a plain ``ValueError``: every reader gets the
    ``JSONDecodeError`` it handles, and the server a 400."""
    number = "9" * 5_000
    with pytest.raises(json.JSONDecodeError, match="number too long"):
        loads('{"a": ' + number + "}")
    body = {
        "top": '{"input": "hi", "n": ' + number + "}",
        "message": '{"messages": [{"role": "user", "content": "hi", "n": ' + number + "}]}",
        "policy": '{"messages": "hi", "policy": {"threshold": ' + number + "}}",
    }[where]
    endpoint = "/v1/moderations" if where == "top" else "/v1/guard/classify"
    response = post(server, endpoint, body)
    assert response.status_code == 400 and "number too long" in response.json()["error"]["message"]
    assert post(server, "/v1/moderations", '{"input": "still serving?"}').status_code == 200


def test_loads_reads_plain_json_as_json_does():
    text = '{"a": [1, 2.5, "\\u0062omb", {"b": null, "c": true}], "d": {}}'
    assert loads(text) == json.loads(text) and loads(text.encode()) == json.loads(text)


# -- every other reader of JSON that carries content ------------------------------------------------------------

CONVERSATION = [
    {"role": "user", "content": [{"type": "text", "text": "Find me a recipe"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q": "bread"}'}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "Bread is flour and water."},
]


def conversation_cases() -> list[Any]:
    return [
        pytest.param(render(CONVERSATION, target, "another"), id=".".join(map(str, target)))
        for target in objects(CONVERSATION)
    ]


@pytest.mark.parametrize("text", conversation_cases())
def test_dataset_rows_with_a_repeated_key_are_invalid_rows(tmp_path, text):
    """``moderate``'s JSONL rows and Parquet/CSV messages cells, and ``evaluate``'s labelled rows."""
    from llamaguard_guardrails.evaluation.labels import read_labels
    from llamaguard_guardrails.scale.records import parquet_record, read_records

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": 1, "messages": ' + text + "}\n" + json.dumps({"id": 2, "messages": CONVERSATION}) + "\n")
    first, second = list(read_records(rows))
    assert first.error is not None and "appears twice" in first.error
    assert second.error is None
    assert "appears twice" in (parquet_record(1, text, 1).error or "")
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"messages": ' + text + ', "unsafe": false}\n')
    (row,) = read_labels(labelled, {"S1"})
    assert row.problem is not None and "appears twice" in row.problem


@pytest.mark.parametrize("text", conversation_cases())
def test_a_conversation_file_with_a_repeated_key_exits_2(tmp_path, capsys, test_model_dir, text):
    from llamaguard_guardrails.cli import main

    path = tmp_path / "chat.json"
    path.write_text(text)
    assert main(["prompt", "--model", str(test_model_dir), "--conversation", str(path)]) == 2
    assert "appears twice" in capsys.readouterr().err


def test_a_policy_file_with_a_repeated_key_is_refused(tmp_path):
    from llamaguard_guardrails.core.errors import InvalidPolicyError
    from llamaguard_guardrails.evaluation.policies import load_policy

    path = tmp_path / "policy.json"
    path.write_text('{"threshold": 0.9, "threshold": 0.1}')
    with pytest.raises(InvalidPolicyError, match="appears twice"):
        load_policy(path)


# -- bounded before validation -----------------------------------------------------------------------------------

MANY_VALUES = {
    "numbers for conversations": ("/v1/guard/classify_batch", lambda n: {"conversations": [1] * n}),
    "numbers for messages": ("/v1/guard/classify", lambda n: {"messages": [1] * n}),
    "content parts": ("/v1/guard/classify", lambda n: {"messages": [{"role": "user", "content": ["a"] * n}]}),
    "messages": ("/v1/guard/classify", lambda n: {"messages": [{"role": "user", "content": "hi"}] * (n // 3)}),
    "moderation inputs": ("/v1/moderations", lambda n: {"input": ["hi"] * n}),
}


@pytest.mark.parametrize("case", list(MANY_VALUES))
def test_a_body_of_more_values_than_the_limit_is_refused_before_validation(server, case):
    """Millions of small values would each cost validation (and an error) on the event loop: the bound
    (``ServeSettings.max_json_values``) refuses them when the body is read, off the loop."""
    endpoint, make = MANY_VALUES[case]
    response = post(server, endpoint, json.dumps(make(300_000)))
    assert response.status_code == 400 and "more than 50000 values" in response.json()["error"]["message"]
    assert post(server, "/v1/moderations", '{"input": "still serving?"}').status_code == 200


@pytest.mark.parametrize("raw", [b'{"input": "bo\xffmb"}', b'{"input": "\xc3"}', b'\xfe\xff\x00{'], ids=repr)
def test_a_body_that_is_not_utf8_is_a_400_saying_so(server, raw):
    response = httpx.post(f"{server.url}/v1/moderations", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
