"""``LlamaGuard.from_server``: the adapters, unchanged, on a served guard (a real server on 127.0.0.1).

Every verdict is compared with the in-process guard's on the same conversation and policy; a server that
cannot answer gives the policy's fail-mode verdict, bad input the same typed error as in-process.
"""

from __future__ import annotations

import asyncio
import functools
import json

import pytest

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.core.errors import (
    GuardClosedError,
    InvalidConversationError,
    InvalidPolicyError,
    UnsafeContentError,
)
from llamaguard_guardrails.serve.app import create_app
from llamaguard_guardrails.serve.background import BackgroundServer
from llamaguard_guardrails.serve.client import ServerError
from llamaguard_guardrails.serve.settings import ServeSettings
from test_serve import CONVERSATIONS, TEXTS

from conftest import make_image, png_bytes

POLICIES = [
    None,
    Policy(excluded_categories={"S6", "S7"}, threshold=0.3),
    Policy(custom_categories={"S15": "Medical."}),
]


@pytest.fixture(scope="module")
def server(guard):
    served = LlamaGuard(guard.backend, guard.prompts, model_name="test-model")
    served.is_test_model = guard.is_test_model
    with BackgroundServer(create_app(served, ServeSettings(api_keys=("secret",), max_custom_categories=2))) as s:
        yield s


@pytest.fixture(scope="module")
def remote(server):
    g = LlamaGuard.from_server(server.url, api_key="secret")
    yield g
    g.close()


def same(got, want) -> None:
    fields = ("safe", "categories", "category_names", "checked_role", "checked_message_index", "threshold", "error")
    for field in fields:
        assert getattr(got, field) == getattr(want, field), field
    assert got.unsafe_probability == pytest.approx(want.unsafe_probability, abs=1e-5)


def test_it_is_a_llamaguard_whose_model_is_elsewhere(remote):
    assert isinstance(remote, LlamaGuard) and remote.backend is None
    assert remote.is_test_model is True and "llama-guard-4" in remote.model_name


@pytest.mark.parametrize("policy", POLICIES, ids=["default", "excluded+threshold", "custom"])
@pytest.mark.parametrize("n", range(len(CONVERSATIONS)))
def test_classify_equals_the_in_process_verdict(remote, guard, n, policy):
    same(remote.classify(CONVERSATIONS[n], policy=policy), guard.classify(CONVERSATIONS[n], policy=policy))


@pytest.mark.parametrize("kind", ["bytes", "PIL", "Path"])
def test_local_images_travel_as_data_urls(remote, guard, tmp_path, kind):
    image = make_image(48, 32, (10, 120, 200))
    path = tmp_path / "i.png"
    path.write_bytes(png_bytes(image))
    value = {"bytes": png_bytes(image), "PIL": image, "Path": path}[kind]
    conversation = [
        {"role": "user", "content": [{"type": "text", "text": "and this?"}, {"type": "image", "image": value}]}
    ]
    same(remote.classify(conversation), guard.classify(conversation))


def test_a_path_string_is_refused_like_in_process(remote, guard, tmp_path):
    path = tmp_path / "i.png"
    path.write_bytes(png_bytes(make_image(8, 8)))
    conversation = [{"role": "user", "content": [{"type": "image", "image": str(path)}]}]
    with pytest.raises(InvalidConversationError) as local:
        guard.classify(conversation)
    with pytest.raises(InvalidConversationError) as served:
        remote.classify(conversation)
    assert str(local.value) in str(served.value)


def test_an_image_file_over_the_budget_is_refused_before_it_is_read_whole(remote, guard, tmp_path, monkeypatch):
    """A ``pathlib.Path`` image is read at most up to a conversation's image byte budget, like a local guard's."""
    from llamaguard_guardrails import InvalidImageError
    from llamaguard_guardrails.serve import client

    monkeypatch.setattr(client, "MAX_IMAGE_BYTES", 1_000)
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    big.write_bytes(png_bytes(make_image(8, 8)) + b"\0" * 2_000)
    small.write_bytes(png_bytes(make_image(8, 8)))
    with pytest.raises(InvalidImageError, match="larger than 1000 bytes"):
        remote.classify([{"role": "user", "content": [{"type": "image", "image": big}]}])
    conversation = [{"role": "user", "content": [{"type": "image", "image": small}]}]
    same(remote.classify(conversation), guard.classify(conversation))


def test_aclassify_batch_and_check(remote, guard):
    async def run():
        return await asyncio.gather(*(remote.aclassify(t) for t in TEXTS))

    for text, verdict in zip(TEXTS, asyncio.run(run())):
        same(verdict, guard.classify(text))
    for text, verdict in zip(TEXTS, remote.classify_batch(TEXTS, batch_size=4)):
        same(verdict, guard.classify(text))
    for text in TEXTS:
        if guard.classify(text).safe:
            assert remote.check(text).safe
        else:
            with pytest.raises(UnsafeContentError):
                remote.check(text, stage="input")


def test_bad_input_raises_the_typed_errors(remote):
    with pytest.raises(InvalidConversationError, match="role"):
        remote.classify([{"role": "wizard", "content": "hi"}])
    with pytest.raises(InvalidPolicyError, match="at most 2"):
        remote.classify("hi", policy=Policy(custom_categories={f"S{n}": "X." for n in range(15, 19)}))
    with pytest.raises(InvalidConversationError, match="cannot be sent"):
        remote.classify([{"role": "user", "content": object()}])


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_a_server_that_cannot_answer_gives_the_fail_mode_verdict(server, guard, fail_mode):
    policy = Policy(fail_mode=fail_mode)
    served = LlamaGuard(guard.backend, guard.prompts)
    s = BackgroundServer(create_app(served, ServeSettings(timeout_s=1e-6))).start().wait_ready()
    g = LlamaGuard.from_server(s.url)
    late = g.classify("a text nobody checked yet", policy=policy)
    assert late.error is not None and "GuardTimeoutError" in late.error
    s.stop()
    down = g.classify("hello", policy=policy)
    assert "unreachable" in down.error
    for verdict in (late, down, *g.classify_batch(["a", "b"], policy=policy)):
        assert verdict.safe is (fail_mode == "open") and verdict.error
    g.close()
    with pytest.raises(GuardClosedError):
        g.classify("after close")


def test_a_wrong_url_key_or_model_fails_at_construction(server):
    with pytest.raises(ServerError, match="401"):
        LlamaGuard.from_server(server.url, api_key="wrong")
    with pytest.raises(ServerError, match="does not serve"):
        LlamaGuard.from_server(server.url, api_key="secret", model="gpt-4")
    with pytest.raises(ServerError, match="cannot reach"):
        LlamaGuard.from_server("http://127.0.0.1:9")


# -- the adapters, unchanged ---------------------------------------------------------------------------------


def test_a_langchain_guard_step_on_the_served_guard(remote, guard):
    pytest.importorskip("langchain_core")
    from llamaguard_guardrails.langchain import LlamaGuardRunnable

    step = LlamaGuardRunnable(guard=remote, stage="input")
    for text in TEXTS:
        if guard.classify(text).safe:
            assert step.invoke(text) == text
        else:
            with pytest.raises(UnsafeContentError):
                step.invoke(text)


def test_moderate_on_the_served_guard_writes_the_in_process_rows(server, guard, tmp_path):
    from llamaguard_guardrails.scale import moderate, read_rows

    source = tmp_path / "chats.jsonl"
    source.write_text(
        "\n".join(json.dumps(c) for c in CONVERSATIONS[:3] + [[{"role": "user", "content": t}] for t in TEXTS])
    )
    factory = functools.partial(LlamaGuard.from_server, server.url, api_key="secret")
    moderate(source, tmp_path / "remote.jsonl", guard_factory=factory, batch_size=4, progress=False)
    moderate(
        source, tmp_path / "local.jsonl", guard_factory=lambda: LlamaGuard(guard.backend, guard.prompts), progress=False
    )
    ours, theirs = read_rows(tmp_path / "remote.jsonl"), read_rows(tmp_path / "local.jsonl")
    assert len(ours) == len(theirs) == 3 + len(TEXTS)
    for a, b in zip(ours, theirs):
        assert a["unsafe_probability"] == pytest.approx(b["unsafe_probability"], abs=1e-5)
        assert {k: v for k, v in a.items() if "latency" not in k and k != "unsafe_probability"} == {
            k: v for k, v in b.items() if "latency" not in k and k != "unsafe_probability"
        }


MIXED = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Run two searches"},
    {
        "role": "assistant",
        "content": "Sure, searching.",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}},
            {"id": "b", "type": "function", "function": {"name": "python", "arguments": '{"code": "print(1)"}'}},
        ],
    },
]


@pytest.mark.parametrize("conversation", [*CONVERSATIONS, MIXED], ids=lambda c: f"{len(c)} messages")
def test_a_parsed_conversation_is_sent_block_by_block_with_its_own_indices(remote, guard, conversation):
    from llamaguard_guardrails.core.conversation import parse_conversation

    parsed = parse_conversation(conversation)
    same(remote.classify(parsed), guard.classify(conversation))
    assert (
        remote.classify_batch([parsed])[0].checked_message_index == guard.classify(conversation).checked_message_index
    )


@pytest.mark.parametrize(
    ("models", "ready"),
    [
        ('{"data": [{"id": 1}]}', '{"status": "ready"}'),
        ('["llama-guard-4"]', '{"status": "ready"}'),
        ('{"data": [{"name": "x"}]}', '{"status": "ready"}'),
        ('{"data": [], "data": [{"id": "x"}]}', '{"status": "ready"}'),
        ('{"data": [{"id": "llama-guard-4"}]}', '{"test_model": "no"}'),
        ('{"data": [{"id": "llama-guard-4"}]}', "not json"),
    ],
)
def test_a_server_that_does_not_answer_as_a_guard_server_fails_at_construction(models, ready):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    app = Starlette(
        routes=[
            Route("/v1/models", lambda request: Response(models, media_type="application/json")),
            Route("/ready", lambda request: Response(ready, media_type="application/json")),
        ]
    )
    with BackgroundServer(app) as fake, pytest.raises(ServerError, match="did not answer as a guard server"):
        LlamaGuard.from_server(fake.url)
