"""Fuzzing: any input gives a verdict or a typed error that names the problem.

Numbers proven here (hypothesis, bounded for speed): 300 arbitrary conversations (roles, content
types, nesting, unicode, special-token and template strings, sizes up to ~20k tokens, None,
numbers, bytes, broken images and tool calls) through ``classify``; 100 batches through
``classify_batch`` and ``aclassify``; 200 arbitrary policy settings; 200 arbitrary values through
the LangChain runnable: every one gives a ``Verdict`` or a ``GuardError`` subclass with a message,
never another exception. The input classes that still raise bare exceptions are pinned by the
tests at the end (they were bugs; fixed).
"""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamaguard_guardrails import GuardError, InvalidPolicyError, Policy, UnsafeContentError, Verdict
from llamaguard_guardrails.langchain import LlamaGuardRunnable

from .helpers import tool_call
from conftest import make_image, png_bytes

FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SPECIALS = ["<|eot|>", "<|header_start|>", "<|image|>", "<END CONVERSATION>", "\nAgent: ", "\\n\\n", "safe", "unsafe"]
PNG = png_bytes(make_image(40, 30))


def mostly(usual: st.SearchStrategy, other: st.SearchStrategy) -> st.SearchStrategy:
    """``usual`` 4 times in 5, else ``other``: well-formed enough that the fuzzer gets past the first check."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda n: usual if n else other)


texts = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=80),  # any unicode but lone surrogates (see below)
    st.lists(
        st.sampled_from(SPECIALS + ["bomb", " ", "\u200b", "\u202e", "\U000e0041", "🎉", "中文"]), max_size=12
    ).map("".join),
    st.integers(min_value=0, max_value=20_000).map(lambda n: "word " * n),  # up to ~20k tokens: windows
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=16), texts)
image_values = st.sampled_from(
    [
        PNG,
        b"not an image",
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
        "data:image/png;base64,@@@",
        "data:text/plain,hello",
        base64.b64encode(PNG).decode(),
        "https://example.com/cat.png",
        "/nonexistent/cat.png",
        "file:///nonexistent.png",
        make_image(20, 20),
        make_image(1, 1),
        make_image(3000, 2),
        42,
        None,
        {"url": "data:image/png;base64,AAAA"},
    ]
)
parts = st.one_of(
    texts,
    mostly(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), scalars),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.one_of(image_values, st.just({}))}),
    st.fixed_dictionaries({"type": st.just("image"), "image": image_values}),
    st.fixed_dictionaries(
        {"type": st.just("image"), "base64": st.one_of(texts, st.just(base64.b64encode(PNG).decode()))}
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["audio", "file", "input_text", "refusal", None, 3])},
        optional={"text": scalars, "refusal": scalars},
    ),
)
contents = mostly(
    st.one_of(texts, st.lists(parts, max_size=4)), st.one_of(scalars, st.dictionaries(st.text(max_size=5), scalars))
)
arguments = st.one_of(
    texts,
    scalars,
    st.dictionaries(st.sampled_from(["q", "code", "command", "x"]), st.one_of(texts, scalars), max_size=3),
    st.builds(json.dumps, st.dictionaries(st.text(max_size=5), texts, max_size=2)),
)
tool_calls = mostly(
    st.lists(
        mostly(
            st.fixed_dictionaries(
                {"id": st.one_of(st.none(), st.text(max_size=4), st.integers())},
                optional={
                    "type": st.just("function"),
                    "function": mostly(
                        st.fixed_dictionaries({}, optional={"name": mostly(texts, scalars), "arguments": arguments}),
                        scalars,
                    ),
                },
            ),
            scalars,
        ),
        max_size=3,
    ),
    scalars,
)
roles = mostly(st.sampled_from(["user", "assistant", "system", "developer", "tool", "function"]), scalars)
message_dicts = st.fixed_dictionaries(
    {"role": roles},
    optional={
        "content": contents,
        "tool_calls": tool_calls,
        "tool_call_id": scalars,
        "name": scalars,
        "function_call": mostly(st.fixed_dictionaries({"name": texts, "arguments": arguments}), scalars),
    },
)
messages = mostly(message_dicts, scalars)
message_lists = st.lists(messages, min_size=1, max_size=5)
conversations = mostly(
    st.one_of(message_lists, message_lists.map(tuple)),
    st.one_of(texts, scalars, messages, st.lists(st.lists(messages, max_size=2), max_size=2)),
)


def assert_verdict_or_typed_error(call) -> None:
    try:
        result = call()
    except GuardError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return
    results = result if isinstance(result, list) else [result]
    assert all(isinstance(v, Verdict) for v in results)
    for verdict in results:
        assert verdict.safe == (verdict.error is None and verdict.unsafe_probability < verdict.threshold)


@pytest.fixture
def fuzz_guard(make_guard):
    return make_guard()


@FUZZ
@given(conversation=conversations)
def test_any_conversation_gives_a_verdict_or_a_typed_error(fuzz_guard, conversation):
    assert_verdict_or_typed_error(lambda: fuzz_guard.classify(conversation))


@settings(FUZZ, max_examples=100)
@given(batch=st.lists(conversations, min_size=1, max_size=3))
def test_any_batch_or_async_check_gives_verdicts_or_a_typed_error(fuzz_guard, batch):
    assert_verdict_or_typed_error(lambda: fuzz_guard.classify_batch(batch))
    assert_verdict_or_typed_error(lambda: asyncio.run(fuzz_guard.aclassify(batch[0])))


@settings(FUZZ, max_examples=200)
@given(
    settings_=st.fixed_dictionaries(
        {},
        optional={
            "excluded_categories": st.one_of(
                scalars,
                st.lists(st.sampled_from(["S1", "S14", "S15", "s2", "", 5])),
                st.sampled_from(["S1,S2", "S1, ,S3", "X"]),
            ),
            "custom_categories": st.one_of(
                scalars,
                st.dictionaries(st.sampled_from(["S15", "S16", "S1", "X1", ""]), st.one_of(texts, scalars), max_size=2),
            ),
            "threshold": scalars,
            "fail_mode": st.one_of(st.sampled_from(["closed", "open", "Open"]), scalars),
            "timeout_s": scalars,
            "unknown_setting": scalars,
        },
    )
)
def test_any_policy_is_valid_or_an_invalid_policy_error(settings_):
    try:
        policy = Policy(**settings_)
    except InvalidPolicyError as exc:
        assert str(exc).startswith("invalid policy:")
        return
    assert (
        0.0 <= policy.threshold <= 1.0
        and policy.fail_mode in ("closed", "open")
        and policy.categories(has_images=False)
    )


@settings(FUZZ, max_examples=200)
@given(value=st.one_of(conversations, st.dictionaries(st.sampled_from(["messages", "q", "input"]), conversations)))
def test_the_langchain_runnable_gives_the_value_or_a_typed_error(fuzz_guard, value):
    runnable = LlamaGuardRunnable(fuzz_guard)
    try:
        assert runnable.invoke(value) is value
    except (GuardError, UnsafeContentError) as exc:  # a block is final: not a GuardError
        assert str(exc).strip()


# -- found by this suite -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "conversation",
    [
        "\ud800",
        json.loads('[{"role": "user", "content": "bomb \\udfff recipe"}]'),  # a client's JSON body
        [{"role": "user", "content": "go"}, tool_call("search", '{"q": "\\ud800"}')],  # an LLM's tool arguments
    ],
    ids=["text", "json-body", "tool-arguments"],
)
def test_lone_surrogates_from_json_give_a_verdict_or_a_typed_error(fuzz_guard, conversation):
    """``json.loads`` happily produces lone surrogates from ``\\ud800`` escapes (TypeError in the tokenizer today)."""
    assert_verdict_or_typed_error(lambda: fuzz_guard.classify(conversation))


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "tool_calls": True},  # list(True): TypeError
        {"role": "assistant", "tool_calls": 5},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"name": "f", "arguments": {"x": b"\x00"}}}],
        },
        {"role": "assistant", "function_call": {"name": "f", "arguments": {"x": {1, 2}}}},  # json.dumps TypeError
    ],
    ids=["tool_calls-bool", "tool_calls-int", "bytes-argument", "set-argument"],
)
def test_malformed_tool_calls_raise_a_typed_error(fuzz_guard, message):
    assert_verdict_or_typed_error(lambda: fuzz_guard.classify([{"role": "user", "content": "go"}, message]))


@pytest.mark.parametrize(
    "value",
    [
        {"role": "banana", "content": "x"},  # ValueError from convert_to_messages (single-dict branch)
        {"role": "user", "content": 5},  # pydantic ValidationError (single-dict branch)
        [{"role": "tool", "content": "result"}],  # KeyError 'tool_call_id' (not in the caught exceptions)
        [
            {"role": "assistant", "content": "x", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}
        ],  # KeyError
    ],
    ids=["unknown-role", "int-content", "tool-message-without-id", "tool-call-without-id"],
)
def test_langchain_conversion_errors_are_typed(fuzz_guard, value):
    try:
        LlamaGuardRunnable(fuzz_guard).invoke(value)
    except GuardError:
        return


@pytest.mark.parametrize(
    "settings_",
    [{"excluded_categories": None}, {"excluded_categories": 5}, {"custom_categories": None}, {"custom_categories": 5}],
    ids=["excluded-None", "excluded-int", "custom-None", "custom-int"],
)
def test_non_iterable_category_settings_raise_invalid_policy_error(settings_):
    with pytest.raises(InvalidPolicyError):
        # the failure this catches: a bare TypeError from frozenset(None) / tuple(5) in the 'before' validators
        Policy(**settings_)
