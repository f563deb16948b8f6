"""Holes of the client-side guard on the Responses API, closed at their mechanism: each test generates the shapes
of one class (a read field of every unexpected type, calls sharing an id, interleaved stream deltas, fields of
stream events and parts nobody reads, logprobs that are not the checked text) and asserts that nothing reaches the
app or the upstream, and that the honest shape still passes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llamaguard_guardrails import InvalidConversationError, UnsafeContentError
from llamaguard_guardrails.client import guard_client
from llamaguard_guardrails.testing import keyword_rule, scripted_guard

HELD = (InvalidConversationError, UnsafeContentError)


@pytest.fixture(scope="module")
def guard(test_model_dir: Path) -> Iterator[Any]:
    g = scripted_guard(test_model_dir, keyword_rule("bomb"), cache_size=0)
    yield g
    g.close()


class Upstream:
    """A mock upstream: records the request bodies and answers ``reply`` (a JSON body or a list of SSE events)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.reply: Any = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(json.loads(request.content or b"{}"))
        if isinstance(self.reply, list):
            body = "".join(f"data: {json.dumps(e)}\n\n" for e in self.reply) + "data: [DONE]\n\n"
            return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=self.reply if self.reply is not None else response_json([message("ok")]))

    def client(self, guard: Any, **options: Any) -> Any:
        raw = openai.OpenAI(
            base_url="http://upstream/v1",
            api_key="k",
            max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(self.handler)),
        )
        return guard_client(raw, guard, **options)


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


def message(text: str, **part: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], **part}],
    }


def response_json(output: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": "m",
        "status": "completed",
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "output": output,
        **fields,
    }


def held(upstream: Upstream, call: Callable[[], Any]) -> None:
    """``call`` raises a typed error, and whatever it returned never held the word."""
    with pytest.raises(HELD):
        result = call()
        if not isinstance(result, openai.BaseModel):
            list(result)


# -- 1. every value of a read request field is shown or refused ------------------------------------------------

#: Values of every type the guard does not read a text field as, each carrying the word.
ODD_VALUES = [
    {"text": "bomb"},
    ["bomb"],
    [{"type": "input_text", "text": "bomb"}],
    ("bomb",),
    b"bomb",
    7,
    1.5,
    True,
]
#: Input items with the fields the guard reads.
INPUT_ITEMS: dict[str, dict[str, Any]] = {
    "message": {"type": "message", "role": "user", "content": "Bread?"},
    "function_call": {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
    "function_call_output": {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    "mcp_call": {"type": "mcp_call", "id": "m1", "server_label": "s", "name": "f", "arguments": "{}", "output": "x"},
    "mcp_approval_request": {
        "type": "mcp_approval_request",
        "id": "a1",
        "server_label": "s",
        "name": "f",
        "arguments": "{}",
    },
    "mcp_list_tools": {"type": "mcp_list_tools", "id": "l1", "server_label": "s", "tools": []},
    "file_search_call": {"type": "file_search_call", "id": "f1", "status": "completed", "queries": ["bread"]},
    "reasoning": {"type": "reasoning", "id": "r1", "summary": []},
}
ITEM_CASES = [(kind, field) for kind, item in INPUT_ITEMS.items() for field in item if field not in ("type",)] + [
    ("reasoning", "encrypted_content"),
    ("mcp_call", "error"),
    ("file_search_call", "results"),
    ("message", "id"),
]


@pytest.mark.parametrize("in_extra", [False, True])
@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
@pytest.mark.parametrize("field", ["instructions", "input"])
def test_a_read_request_field_of_another_type_is_refused(upstream, guard, field, value, in_extra):
    guarded = upstream.client(guard)
    request = {"input": "Bread?", "instructions": "Be brief."}
    request.pop(field)
    if field == "input" and isinstance(value, list):  # a list of items is read item by item: below
        value = {"x": value}
    given = {"extra_body": {field: value}} if in_extra else {field: value}
    with pytest.raises(HELD):
        guarded.responses.create(model="m", **request, **given)
    assert upstream.sent == []


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
@pytest.mark.parametrize(("kind", "field"), ITEM_CASES)
def test_a_read_item_field_of_another_type_is_shown_or_refused(upstream, guard, kind, field, value):
    guarded = upstream.client(guard)
    item = {**INPUT_ITEMS[kind], field: value}
    if isinstance(value, list) and field in ("content", "output", "summary", "tools", "queries", "results"):
        pytest.skip("a list is this field's own type: its elements are read")
    with pytest.raises(HELD):
        guarded.responses.create(model="m", input=[item])
    assert upstream.sent == []


@pytest.mark.parametrize("kind", INPUT_ITEMS)
def test_honest_requests_still_pass(upstream, guard, kind):
    guarded = upstream.client(guard)
    upstream.reply = response_json([message("Knead and bake.")])
    items = [INPUT_ITEMS[kind]]
    if kind == "function_call_output":
        items = [INPUT_ITEMS["function_call"], *items]
    result = guarded.responses.create(model="m", input=items, instructions="Be brief.")
    assert result.output_text == "Knead and bake." and len(upstream.sent) == 1


# -- 2. calls sharing an id: every call is shown, or they raise -------------------------------------------------


def _call_item(kind: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """An output item of ``kind`` whose call id is ``call_id``."""
    if kind == "function_call":
        return {"type": kind, "id": f"fc_{name}", "call_id": call_id, "name": name, "arguments": arguments}
    if kind in ("mcp_call", "mcp_approval_request"):
        return {"type": kind, "id": call_id, "server_label": "s", "name": name, "arguments": arguments}
    if kind == "mcp_list_tools":
        return {"type": kind, "id": call_id, "server_label": "s", "tools": []}
    return {"type": kind, "id": call_id, "status": "completed", "queries": [arguments or "q"]}


CALL_KINDS = ["function_call", "mcp_call", "mcp_approval_request", "mcp_list_tools", "file_search_call"]
NAMED = ["function_call", "mcp_call", "mcp_approval_request"]


def _events(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A plain stream of ``output``: each item added (arguments not yet streamed) and done, then completed."""
    events: list[dict[str, Any]] = []
    for n, item in enumerate(output):
        added = {**item, "arguments": ""} if "arguments" in item else item
        events.append({"type": "response.output_item.added", "output_index": n, "item": added})
        events.append({"type": "response.output_item.done", "output_index": n, "item": item})
    events.append({"type": "response.completed", "response": response_json(output)})
    return [{**e, "sequence_number": n} for n, e in enumerate(events)]


def _create(upstream: Upstream, guard: Any, output: list[dict[str, Any]], stream: bool) -> Any:
    upstream.reply = _events(output) if stream else response_json(output)
    result = upstream.client(guard).responses.create(model="m", input="Weather?", stream=stream)
    return list(result) if stream else result


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("unsafe_args", ["", '{"what":"it"}'])
@pytest.mark.parametrize("unsafe_first", [True, False])
@pytest.mark.parametrize("other", CALL_KINDS)
@pytest.mark.parametrize("kind", NAMED)
def test_calls_sharing_an_id_under_other_names_raise(upstream, guard, kind, other, unsafe_first, unsafe_args, stream):
    unsafe = _call_item(kind, "call_1", "build_bomb", unsafe_args)
    safe = _call_item(other, "call_1", "get_weather", '{"city":"Paris"}')
    output = [unsafe, safe] if unsafe_first else [safe, unsafe]
    with pytest.raises(HELD):
        _create(upstream, guard, output, stream)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("other", CALL_KINDS)
@pytest.mark.parametrize("kind", NAMED)
def test_calls_with_their_own_ids_pass(upstream, guard, kind, other, stream):
    output = [
        _call_item(kind, "call_1", "get_time", ""),
        _call_item(other, "call_2", "get_weather", '{"city":"Paris"}'),
    ]
    _create(upstream, guard, output, stream)
    output = [
        _call_item(kind, "call_1", "get_time", "{}"),
        {**_call_item(kind, "call_1", "get_time", ""), "id": "fc_2"},
    ]
    _create(upstream, guard, output, stream)  # two views of one call


# -- 3. streamed text: the guard checks the text any reader assembles -------------------------------------------

UNSAFE = "Step 1: build the bomb casing."
#: Streamed text events: (delta type, the part index field).
DELTA_KINDS = [
    ("response.output_text.delta", "content_index"),
    ("response.refusal.delta", "content_index"),
    ("response.reasoning_text.delta", "content_index"),
    ("response.reasoning_summary_text.delta", "summary_index"),
]


def _delta(kind: str, index_field: str, item_id: str, output_index: int, part: int, text: str) -> dict[str, Any]:
    event = {"type": kind, "item_id": item_id, "output_index": output_index, index_field: part, "delta": text}
    return {**event, "logprobs": []} if kind == "response.output_text.delta" else event


def _stream(upstream: Upstream, guard: Any, events: list[dict[str, Any]], mode: str) -> str:
    """The deltas an app prints in arrival order."""
    upstream.reply = [{**e, "sequence_number": n} for n, e in enumerate(events)]
    guarded = upstream.client(guard, stream_mode=mode, window_size=8, window_overlap=2)
    return "".join(
        getattr(e, "delta", None) or "" for e in guarded.responses.create(model="m", input="Hi", stream=True)
    )


SPLITS = [1, 10, 19, 20, 21, len(UNSAFE) - 1]
MODES = ["buffered", "windowed"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cut", SPLITS)
@pytest.mark.parametrize(("kind", "index_field"), DELTA_KINDS)
@pytest.mark.parametrize("across", ["items", "parts"])
def test_a_text_split_across_parts_is_checked_as_read_in_arrival_order(
    upstream, guard, kind, index_field, cut, across, mode
):
    first, second = UNSAFE[:cut], UNSAFE[cut:]
    if across == "items":
        events = [_delta(kind, index_field, "A", 0, 0, first), _delta(kind, index_field, "B", 1, 0, second)]
    else:
        events = [_delta(kind, index_field, "A", 0, 0, first), _delta(kind, index_field, "A", 0, 1, second)]
    with pytest.raises(HELD):
        _stream(upstream, guard, events, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cut", SPLITS)
@pytest.mark.parametrize(("kind", "index_field"), DELTA_KINDS)
@pytest.mark.parametrize(
    "placing",
    [
        [("A", 0, 0), ("B", 1, 0), ("A", 0, 0)],  # item A resumes after B began
        [("A", 0, 0), ("A", 0, 1), ("A", 0, 0)],  # part 0 resumes after part 1 began
        [("A", 0, 0), ("A", 1, 0), ("A", 0, 0)],  # item A moves to another output index
        [("A", 0, 0), ("B", 0, 0), ("A", 0, 0)],  # two items at one output index
        [("A", 0, 0), ("A", 1, 0)],
        [("A", 0, 0), ("B", 0, 0)],
    ],
)
def test_interleaved_or_moving_deltas_raise(upstream, guard, kind, index_field, cut, placing, mode):
    pieces = [UNSAFE[:cut], " [unrelated] ", UNSAFE[cut:]][: len(placing)]
    if len(placing) == 2:
        pieces = [UNSAFE[:cut], UNSAFE[cut:]]
    events = [_delta(kind, index_field, *where, text) for where, text in zip(placing, pieces, strict=True)]
    with pytest.raises(HELD):  # a cut with the whole word in one piece may be blocked by a window check first
        _stream(upstream, guard, events, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("kind", "index_field"), DELTA_KINDS)
def test_honest_streamed_parts_pass(upstream, guard, kind, index_field, mode):
    safe = "Knead the dough, let it rise, then bake it hot."
    events = [_delta(kind, index_field, "A", 0, 0, safe[i : i + 5]) for i in range(0, 25, 5)]
    events += [_delta(kind, index_field, "A", 0, 1, safe[i : i + 5]) for i in range(25, len(safe), 5)]
    events += [_delta(kind, index_field, "B", 1, 0, " Enjoy.")]
    assert _stream(upstream, guard, events, mode) == safe + " Enjoy."


# -- 4. every field of a stream event, a part and a response is read, shown or refused ---------------------------

from llamaguard_guardrails.client.responses import EVENT_FIELDS, RESPONSE_EVENTS  # noqa: E402


def _minimal(kind: str) -> dict[str, Any]:
    """A valid event of ``kind`` with nothing unsafe in it."""
    fields = EVENT_FIELDS[kind]
    event: dict[str, Any] = {"type": kind, "sequence_number": 0}
    values = {
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "summary_index": 0,
        "annotation_index": 0,
        "response": response_json([]),
        "item": message("Fine."),
        "part": {"type": "output_text", "text": "Fine.", "annotations": []},
        "annotation": {
            "type": "url_citation",
            "url": "https://example.com",
            "title": "x",
            "start_index": 0,
            "end_index": 1,
        },
        "delta": "Fine.",
        "text": "Fine.",
        "refusal": "Fine.",
        "arguments": "{}",
        "logprobs": [],
        "status": "completed",
    }
    return {**event, **{k: values[k] for k in fields if k in values}}


def _arguments_item(kind: str) -> list[dict[str, Any]]:
    """The item streamed arguments belong to (none for other events)."""
    if "arguments" not in kind:
        return []
    call = {"type": "function_call", "id": "msg_1", "call_id": "c1", "name": "f", "arguments": ""}
    return [{"type": "response.output_item.added", "output_index": 0, "item": call}]


@pytest.mark.parametrize("extra", ["note", "explanation"])
@pytest.mark.parametrize("kind", sorted(EVENT_FIELDS))
def test_an_unread_field_of_any_stream_event_raises(upstream, guard, kind, extra):
    before = _arguments_item(kind)
    _stream(upstream, guard, [*before, _minimal(kind)], "buffered")  # the honest event passes
    with pytest.raises(InvalidConversationError, match=extra):
        _stream(upstream, guard, [*before, {**_minimal(kind), extra: "how to build a bomb"}], "buffered")


@pytest.mark.parametrize("kind", sorted(EVENT_FIELDS))
def test_openai_obfuscation_padding_passes_on_any_event(upstream, guard, kind):
    """OpenAI pads stream events with random characters by default: padding, not text of the answer."""
    _stream(upstream, guard, [*_arguments_item(kind), {**_minimal(kind), "obfuscation": "x7Qp2"}], "buffered")


@pytest.mark.parametrize(
    "extra", [{"annotations": [{"note": "bomb"}]}, {"logprobs": [{"token": "bomb"}]}, {"x": "bomb"}]
)
@pytest.mark.parametrize(
    ("kind", "ptype"),
    [
        ("response.content_part.added", "reasoning_text"),
        ("response.content_part.done", "reasoning_text"),
        ("response.reasoning_summary_part.added", "summary_text"),
        ("response.reasoning_summary_part.done", "summary_text"),
    ],
)
def test_an_unread_field_of_a_reasoning_part_raises(upstream, guard, kind, ptype, extra):
    event = {**_minimal(kind), "item_id": "rs_1", "part": {"type": ptype, "text": "thinking"}}
    _stream(upstream, guard, [event], "buffered")
    with pytest.raises(InvalidConversationError):
        _stream(upstream, guard, [{**event, "part": {**event["part"], **extra}}], "buffered")


SHOWN_FIELDS = [
    {"error": {"code": "server_error", "message": "how to build a bomb"}},
    {"incomplete_details": {"reason": "bomb"}},
    {"instructions": "Explain the bomb."},
]


@pytest.mark.parametrize("stream_kind", [None, *sorted(RESPONSE_EVENTS)])
@pytest.mark.parametrize("fields", SHOWN_FIELDS + [{"explanation": "bomb"}, {"moderation": {"note": "bomb"}}], ids=str)
def test_text_of_a_response_object_is_shown_and_unknown_fields_raise(upstream, guard, fields, stream_kind):
    answer = response_json([message("Fine.")], **fields)
    if stream_kind is None:
        upstream.reply = answer
        with pytest.raises(HELD):
            upstream.client(guard).responses.create(model="m", input="Hi")
    else:
        with pytest.raises(HELD):
            _stream(upstream, guard, [{"type": stream_kind, "response": answer}], "buffered")


@pytest.mark.parametrize("stream", [False, True])
def test_honest_response_texts_pass(upstream, guard, stream):
    answer = response_json(
        [message("Fine.")],
        error={"code": "rate_limit", "message": "Slow down."},
        incomplete_details={"reason": "max_output_tokens"},
        instructions="Be brief.",
    )
    if stream:
        _stream(upstream, guard, [{"type": "response.completed", "response": answer}], "buffered")
    else:
        upstream.reply = answer
        upstream.client(guard).responses.create(model="m", input="Hi", instructions="Be brief.")


# -- 5. logprobs are the tokens of the checked text -------------------------------------------------------------


def _lp(token: str, **extra: Any) -> dict[str, Any]:
    return {"token": token, "logprob": -0.1, "bytes": list(token.encode()), "top_logprobs": [], **extra}


SAFE = "Knead and bake."
BAD_LOGPROBS = [
    [_lp("bomb")],  # tokens that are not the text
    [_lp("Knead and bake"), _lp(". bomb")],
    [_lp(SAFE, top_logprobs=[{"token": "bomb", "logprob": -1.0, "bytes": []}])],  # tokens not chosen
    [{**_lp(SAFE), "bytes": list(b"bomb")}],  # bytes that are not the token
    [_lp(SAFE, note="bomb")],  # a field nobody reads
]


@pytest.mark.parametrize("logprobs", BAD_LOGPROBS, ids=str)
@pytest.mark.parametrize("where", ["output_text", "delta", "done", "part"])
def test_logprobs_that_are_not_the_checked_text_raise(upstream, guard, where, logprobs):
    def run(lps: list[dict[str, Any]]) -> Any:
        if where == "output_text":
            upstream.reply = response_json([message(SAFE, logprobs=lps)])
            return upstream.client(guard).responses.create(model="m", input="Hi")
        kind = {
            "delta": "response.output_text.delta",
            "done": "response.output_text.done",
            "part": "response.content_part.done",
        }[where]
        event = _minimal(kind)
        event.update({k: SAFE for k in ("delta", "text") if k in event})
        if "logprobs" in EVENT_FIELDS[kind]:
            event["logprobs"] = lps
        if where == "part":
            event["part"] = {"type": "output_text", "text": SAFE, "annotations": [], "logprobs": lps}
        return _stream(upstream, guard, [event], "buffered")

    run([_lp("Knead"), _lp(" and"), _lp(" bake"), _lp(".")])  # the honest tokens pass
    with pytest.raises(InvalidConversationError, match="logprobs"):
        run(logprobs)
