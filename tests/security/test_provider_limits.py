"""The Llama Stack provider bounds what one remote request may cost, before any model work.

Llama Stack 0.7 accepts a request body of any size, and the core classifies all it is given (long texts in
windows, long histories in history windows): before these limits one ``/v1/moderations`` request of 4,000 inputs
scored 4,000 prompts, one ``run_shield`` of 2,000 long messages 189, with no deadline at all by default. Generated
here: the text put in each place a request carries it (moderation inputs, every message role, names, content
parts, data URLs, tool-call arguments, an assistant's extra fields), over and at the limit; too many inputs; a
deadline the shield or the provider leaves out or sets too long; more checks at once than ``max_pending``,
abandoned ones included. The end-to-end answers of a real ``llama stack run`` are in ``tests/test_llama_stack.py``.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

pytest.importorskip("llama_stack_api")

from llama_stack_api import ListShieldsResponse, RunModerationRequest, RunShieldRequest, Shield

from llamaguard_guardrails import LlamaGuard
from llamaguard_guardrails.llama_stack import LlamaGuardProviderConfig, LlamaGuardSafetyImpl
from llamaguard_guardrails.llama_stack.provider.impl import (
    RequestTooLargeError,
    ShieldBusyError,
    ShieldParamsError,
)
from llamaguard_guardrails.testing import keyword_rule

from .helpers import HangingBackend

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LIMIT = 4_000  # max_request_chars in these tests


class Store:
    """What Llama Stack's shields routing table offers the provider."""

    def __init__(self, shield: Shield) -> None:
        self.shield = shield

    async def get_shield(self, request: Any) -> Shield:
        return self.shield

    async def list_shields(self) -> ListShieldsResponse:
        return ListShieldsResponse(data=[self.shield])


def provider(guard: LlamaGuard, params: dict[str, Any] | None = None, **config: Any) -> LlamaGuardSafetyImpl:
    impl = LlamaGuardSafetyImpl(LlamaGuardProviderConfig(model="unused", **config), guard=guard)
    impl.shield_store = Store(
        Shield(identifier="lg", provider_id="llamaguard", provider_resource_id="lg-model", params=params or {})
    )
    return impl


def data_url(chars: int) -> str:
    """A data URL of ``chars`` characters (not an image: the size is refused before anything is decoded)."""
    head = "data:image/png;base64,"
    return head + base64.b64encode(b"\0" * ((chars - len(head)) * 3 // 4)).decode()


def placed(text: str) -> dict[str, list[dict[str, Any]]]:
    """``text`` in each place a run_shield request carries text (each a valid Llama Stack 0.7 request)."""
    call = {"id": "c1", "type": "function", "function": {"name": "search", "arguments": text}}
    return {
        "user text": [{"role": "user", "content": text}],
        "system text": [{"role": "system", "content": text}, {"role": "user", "content": "hi"}],
        "developer text": [{"role": "developer", "content": text}, {"role": "user", "content": "hi"}],
        "user name": [{"role": "user", "content": "hi", "name": text}],
        "text part": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": text}]}],
        "tool result": [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call | {"function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": text},
        ],
        "tool-call arguments": [{"role": "assistant", "content": None, "tool_calls": [call]}],
        "assistant extra field": [{"role": "assistant", "content": "ok", "reasoning_content": text}],
        "history": [{"role": "user", "content": text[: len(text) // 2]}] * 2 + [{"role": "user", "content": "hi"}],
    }


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize("place", list(placed("x")))
def test_a_shield_request_over_the_character_limit_is_413_before_the_model(make_guard, place):
    guard = make_guard()
    impl = provider(guard, max_request_chars=LIMIT)
    messages = placed("a" * (LIMIT + 1))[place]
    with pytest.raises(RequestTooLargeError, match="max_request_chars") as raised:
        run(impl.run_shield(RunShieldRequest(shield_id="lg", messages=messages)))
    assert raised.value.status_code == 413
    assert guard.backend.calls == []


def test_a_data_url_counts_against_the_character_limit(make_guard):
    guard = make_guard()
    impl = provider(guard, max_request_chars=LIMIT)
    image = {"type": "image_url", "image_url": {"url": data_url(LIMIT + 8)}}
    with pytest.raises(RequestTooLargeError, match="max_request_chars"):
        run(impl.run_shield(RunShieldRequest(shield_id="lg", messages=[{"role": "user", "content": [image]}])))
    assert guard.backend.calls == []


@pytest.mark.parametrize("place", list(placed("x")))
def test_a_shield_request_within_the_limit_is_checked(make_guard, place):
    guard = make_guard()
    impl = provider(guard, max_request_chars=LIMIT)
    messages = placed("bomb " * (LIMIT // 10))[place]
    violation = run(impl.run_shield(RunShieldRequest(shield_id="lg", messages=messages))).violation
    if place not in ("system text", "developer text", "history"):  # there the text is context of a safe last turn
        assert violation is not None and violation.metadata["violation_type"] == ["S9"]
    assert guard.backend.calls


@pytest.mark.parametrize(("count", "size"), [(65, 1), (2, LIMIT // 2 + 1), (1, LIMIT + 1), (200, 30)])
def test_moderations_over_the_input_or_character_limit_are_refused_before_the_model(make_guard, count, size):
    guard = make_guard()
    impl = provider(guard, max_request_chars=LIMIT)
    request = RunModerationRequest(input=["a" * size] * count if count > 1 else "a" * size, model="lg-model")
    with pytest.raises(RequestTooLargeError, match=r"max_inputs|max_request_chars") as raised:
        run(impl.run_moderation(request))
    assert raised.value.status_code == (400 if count > 64 else 413)
    assert guard.backend.calls == []


def test_moderations_at_the_limits_are_checked_one_result_each(make_guard):
    guard = make_guard()
    impl = provider(guard, max_request_chars=LIMIT, max_inputs=8)
    inputs = ["bomb" if n % 2 else "bread" for n in range(8)]
    results = run(impl.run_moderation(RunModerationRequest(input=inputs, model="lg-model"))).results
    assert [r.flagged for r in results] == [bool(n % 2) for n in range(8)]
    with pytest.raises(RequestTooLargeError, match="at most 8"):
        run(impl.run_moderation(RunModerationRequest(input=[*inputs, "x"], model="lg-model")))


@pytest.mark.parametrize("params", [{}, {"timeout_s": 3600.0}, {"timeout_s": None}], ids=repr)
@pytest.mark.parametrize("provider_timeout", [None, 3600.0])
def test_every_check_has_the_providers_deadline_at_most(builder, params, provider_timeout):
    """No deadline, or a longer one, from the provider config or a shield: the check still ends at max_timeout_s."""
    backend = HangingBackend(builder, keyword_rule("bomb"))
    guard = LlamaGuard(backend, builder, cache_size=0)
    impl = provider(guard, params, max_timeout_s=0.2, timeout_s=provider_timeout)
    try:
        request = RunShieldRequest(shield_id="lg", messages=[{"role": "user", "content": "hello"}])
        violation = run(impl.run_shield(request)).violation
        assert violation is not None and violation.violation_level.value == "error"
        assert violation.metadata["status"] == "error" and "GuardTimeoutError" in violation.metadata["error"]
        moderation = run(impl.run_moderation(RunModerationRequest(input=["a", "b"], model="lg-model")))
        assert [r.flagged for r in moderation.results] == [True, True]
    finally:
        backend.release.set()
        guard.close()


def test_a_shorter_shield_deadline_is_kept(make_guard):
    impl = provider(make_guard(), {"timeout_s": 0.5}, max_timeout_s=30)
    assert impl._bounded(impl._policy(run(impl._shield("lg")))).timeout_s == 0.5
    assert impl._bounded(impl.default_policy).timeout_s == 30


@pytest.mark.parametrize("second", ["run_shield", "run_moderation"])
def test_checks_past_max_pending_are_429_abandoned_ones_included(builder, second):
    """Two checks hold the model (one running, one past its deadline and abandoned): a third request is refused."""
    backend = HangingBackend(builder, keyword_rule("bomb"))
    guard = LlamaGuard(backend, builder, cache_size=0, micro_batching=False)
    impl = provider(guard, max_pending=1, max_timeout_s=0.2)
    shield = RunShieldRequest(shield_id="lg", messages=[{"role": "user", "content": "hello"}])
    calls = {
        "run_shield": lambda: impl.run_shield(shield),
        "run_moderation": lambda: impl.run_moderation(RunModerationRequest(input="hello", model="lg-model")),
    }
    try:
        first = run(impl.run_shield(shield)).violation  # hangs past its deadline: abandoned, still running
        assert first.metadata["status"] == "error" and guard.abandoned_checks == 1
        with pytest.raises(ShieldBusyError, match="max_pending 1") as raised:
            run(calls[second]())
        assert raised.value.status_code == 429 and raised.value.headers == {"Retry-After": "1"}
    finally:
        backend.release.set()
    for _ in range(200):  # the abandoned check ends once the model step returns
        if guard.abandoned_checks == 0:
            break
        asyncio.run(asyncio.sleep(0.05))
    assert guard.abandoned_checks == 0
    assert run(calls[second]()) is not None  # admitted again
    guard.close()


def test_concurrent_requests_share_max_pending(make_guard):
    """Inside one event loop, checks admitted and running count: the request past the limit is refused at once."""

    async def scenario() -> list[Any]:
        impl = provider(make_guard(), max_pending=3)
        shield = RunShieldRequest(shield_id="lg", messages=[{"role": "user", "content": "hello"}])
        moderation = RunModerationRequest(input=["a", "b", "c"], model="lg-model")
        first = asyncio.ensure_future(impl.run_moderation(moderation))
        await asyncio.sleep(0)  # the moderation is admitted (3 checks) before the shield request arrives
        outcomes = await asyncio.gather(impl.run_shield(shield), return_exceptions=True)
        await first
        return [*outcomes, await impl.run_shield(shield)]

    refused, admitted = run(scenario())
    assert isinstance(refused, ShieldBusyError)
    assert admitted.violation is None


# -- a shield's policy is validated as the core validates it ----------------------------------------------------

NO_ROOM = {
    "many categories": {"custom_categories": {f"S{n}": "word " * 399 for n in range(15, 100)}},
    "few long categories": {
        "custom_categories": {f"S{n}": " ".join(f"w{i}" for i in range(330)) for n in range(15, 35)}
    },
}


@pytest.mark.parametrize("params", list(NO_ROOM))
def test_a_shield_whose_policy_leaves_no_room_is_refused_at_registration(make_guard, params):
    """Custom categories that fill the prompt passed registration; every check of the shield then raised a plain
    InvalidPolicyError, which llama-stack answers with a logged traceback on a closed connection."""
    impl = provider(make_guard(), NO_ROOM[params])
    with pytest.raises(ShieldParamsError, match="leaves no room") as raised:
        run(impl.register_shield(run(impl._shield("lg"))))
    assert raised.value.status_code == 400 and str(raised.value).startswith("shield 'lg':")


@pytest.mark.parametrize("params", list(NO_ROOM))
@pytest.mark.parametrize("entry", ["run_shield", "run_moderation"])
def test_a_stored_shield_whose_policy_leaves_no_room_is_a_clean_400_at_every_check(make_guard, params, entry):
    """A shield registered before the model was loaded (``load_on_startup: false``, or kept across a restart) is
    checked at each call: a clean 400, never a pass and never the catch-all."""
    guard = make_guard()
    impl = provider(guard, NO_ROOM[params])
    call = {
        "run_shield": lambda: impl.run_shield(
            RunShieldRequest(shield_id="lg", messages=[{"role": "user", "content": "bomb"}])
        ),
        "run_moderation": lambda: impl.run_moderation(RunModerationRequest(input=["bomb", "x"], model="lg-model")),
    }[entry]
    with pytest.raises(ShieldParamsError, match="leaves no room") as raised:
        run(call())
    assert raised.value.status_code == 400
    assert guard.backend.calls == []


def test_a_shield_whose_policy_fits_registers_and_checks(make_guard):
    impl = provider(make_guard(), {"custom_categories": {"S15": "Medical advice."}, "threshold": 0.4})
    run(impl.register_shield(run(impl._shield("lg"))))
    request = RunShieldRequest(shield_id="lg", messages=[{"role": "user", "content": "bomb"}])
    assert run(impl.run_shield(request)).violation.metadata["violation_type"] == ["S9"]
