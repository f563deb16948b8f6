"""``LlamaGuard.from_server`` takes a server's answer only as the core's decision on what it sent.

A fake server (a real HTTP server on 127.0.0.1) answers each check with the verdict the in-process core makes on
the request it got (a scripted model: ``[p=0.9][cat=S9]`` markers decide the scores), mutated one field at a time:
every field of the verdict (and ``status``) left out, given a loose or wrong type, or given a value the core cannot
have given for that request (a verdict on another message, under another threshold, blocking without a category,
allowing at the threshold, reviewing outside the grey zone ...). Each mutation must give the policy's fail-mode
verdict (closed: blocked with ``error`` set; open: passed with ``error`` set) through ``classify``, ``aclassify``
and one item of ``classify_batch``, while the unmutated answer comes back unchanged. Answers that are not one JSON
reading (a repeated key, ``NaN``) and batch items that are not objects get the fail mode too.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llamaguard_guardrails import Policy
from llamaguard_guardrails.core.conversation import parse_conversation
from llamaguard_guardrails.core.verdict import Verdict
from llamaguard_guardrails.serve.app import verdict_json
from llamaguard_guardrails.serve.background import BackgroundServer
from llamaguard_guardrails.serve.client import VERDICT_FIELDS, RemoteGuard
from llamaguard_guardrails.testing import marker_category, marker_probability, scripted_guard

SWAHILI = "Habari yako? Ninaenda sokoni kununua matunda na mboga leo."
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 150)
TOOL_CALL = {"id": "a", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}

#: name -> (conversation, policy sent: None for the server's own); each gives a different kind of verdict.
CASES: dict[str, tuple[Any, Policy | None]] = {
    "safe, the server's policy": ("hello", None),
    "safe": ("hello", Policy()),
    "unsafe agent message": (
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "[p=0.9][cat=S9] here is how"}],
        Policy(),
    ),
    "unsafe, the server's policy": ("[p=0.9][cat=S9] how", None),
    "grey zone review": ("[p=0.4][cat=S1] hmm", Policy(review_threshold=0.3)),
    "cleared by an excluded category": ("[p=0.9][cat=S6] x", Policy(excluded_categories={"S6"})),
    "out of depth, review": (SWAHILI, Policy(out_of_depth="review")),
    "out of depth, block": (SWAHILI, Policy(out_of_depth="block")),
    "history windows": (
        [
            {"role": "user", "content": LONG},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "[p=0.7][cat=S2] go"},
        ],
        Policy(threshold=0.6),
    ),
    "custom category": ("[p=0.8][cat=S15] x", Policy(custom_categories={"S15": "Medical."})),
    "parsed conversation": (
        "parsed",  # built in the fixture: parse_conversation(PARSED)
        Policy(),
    ),
}
PARSED = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Run a search"},
    {"role": "assistant", "content": "Sure, searching.", "tool_calls": [TOOL_CALL]},
]


def conversation_of(name: str) -> Any:
    conversation, _ = CASES[name]
    return parse_conversation(PARSED) if conversation == "parsed" else conversation


class Raw(bytes):
    """An answer sent as these bytes (JSON text ``json.dumps`` would not write)."""


class FakeServer:
    """Answers with the in-process verdict on the request it got, passed through :attr:`mutate` (item index)."""

    def __init__(self, guard: Any) -> None:
        self.guard = guard
        self.mutate: Callable[[dict[str, Any], int], Any] | None = None
        self.batch: Callable[[list[Any]], Any] | None = None  # the whole batch answer, from its verdicts
        self._verdicts: dict[str, dict[str, Any]] = {}

    def genuine(self, messages: Any, policy: Any) -> dict[str, Any]:
        key = json.dumps([messages, policy], sort_keys=True)
        if key not in self._verdicts:
            chosen = None if policy is None else Policy.model_validate(policy)
            self._verdicts[key] = verdict_json(self.guard.classify(messages, policy=chosen))
        return copy.deepcopy(self._verdicts[key])

    def answer(self, messages: Any, policy: Any, n: int) -> Any:
        verdict = self.genuine(messages, policy)
        return verdict if self.mutate is None else self.mutate(verdict, n)

    def app(self) -> Starlette:
        async def classify(request: Request) -> Response:
            body = await request.json()
            return reply(self.answer(body["messages"], body.get("policy"), 0))

        async def classify_batch(request: Request) -> Response:
            body = await request.json()
            items = [self.answer(c, body.get("policy"), n) for n, c in enumerate(body["conversations"])]
            return reply(self.batch(items) if self.batch else {"verdicts": items})

        async def ready(request: Request) -> Response:
            return JSONResponse({"status": "ready"})

        return Starlette(
            routes=[
                Route("/v1/guard/classify", classify, methods=["POST"]),
                Route("/v1/guard/classify_batch", classify_batch, methods=["POST"]),
                Route("/ready", ready),
            ]
        )


def reply(answer: Any) -> Response:
    content = bytes(answer) if isinstance(answer, Raw) else json.dumps(answer).encode()  # NaN/Infinity as written
    return Response(content, media_type="application/json")


@pytest.fixture(scope="module")
def scripted(test_model_dir):
    return scripted_guard(
        test_model_dir, marker_category, probability=marker_probability, cache_size=0, max_prompt_tokens=1024
    )


@pytest.fixture(scope="module")
def fake(scripted):
    server = FakeServer(scripted)
    with BackgroundServer(server.app()) as background:
        background.wait_ready()
        server.url = background.url
        yield server


@pytest.fixture(scope="module")
def client(fake):
    with RemoteGuard(fake.url, verify=False) as g:
        yield g


@pytest.fixture(autouse=True)
def honest(fake):
    fake.mutate = fake.batch = None
    yield
    fake.mutate = fake.batch = None


def policies(name: str) -> list[Policy | None]:
    """The policies a case is checked under: the one sent, in each fail mode (``None``: none sent, closed)."""
    _, policy = CASES[name]
    if policy is None:
        return [None]
    return [policy, policy.model_copy(update={"fail_mode": "open"})]


def assert_fail_mode(verdict: Verdict, policy: Policy | None) -> None:
    assert verdict.error is not None and verdict.error_code is not None, verdict
    if policy is not None and policy.fail_mode == "open":
        assert verdict.safe and verdict.outcome == "allow", verdict
    else:
        assert not verdict.safe and verdict.outcome == "block" and verdict.unsafe_probability == 1.0, verdict


# -- the mutations --------------------------------------------------------------------------------------------

DROP = object()
NAN, INF = float("nan"), float("inf")

#: Values of the wrong JSON type, or outside the field's range, for every field (wrong for any request).
LOOSE: dict[str, list[Any]] = {
    "safe": ["yes", "true", 1, 0, None],
    "categories": ["S9", [9], None, {"S9": "x"}],
    "category_names": ["Violent Crimes", [1], None],
    "unsafe_probability": ["0.5", True, None, -0.01, 1.01, NAN, INF],
    "threshold": ["0.5", True, None, NAN, INF],
    "checked_role": ["user", "assistant", "Assistant", None, 1],
    "checked_message_index": [True, 0.0, "0", None],
    "raw_output": [None, 1, ["safe"]],
    "latency_ms": ["1", True, None, NAN],
    "error": [1, ["x"], True],
    "error_code": [1, "not an identifier", ""],
    "ignored_categories": ["S6", [6], None],
    "omitted_messages": ["0", [0.0], [True], None],
    "windows": [1.0, True, "1", None],
    "history_windows": [0.0, True, "0", None],
    "cached": ["no", 0, None],
    "prompt_tokens": [1.5, True, "3", None],
    "needs_review": ["no", 0, None],
    "review_threshold": ["0.3", True, NAN],
    "languages": ["en", [1], None],
    "out_of_depth": ["reason", [1], None],
    "status": ["ok", 1, None],
}
assert set(LOOSE) == VERDICT_FIELDS | {"status"}, "a verdict field has no mutations"


def decisions(v: dict[str, Any], index: int, policy: Policy | None) -> dict[str, list[Any]]:
    """Well-typed values the core cannot have given for this request, per field (``v``: the true answer)."""
    safe, p, t, r = v["safe"], v["unsafe_probability"], v["threshold"], v["review_threshold"]
    cats, ignored, omitted = v["categories"], v["ignored_categories"], v["omitted_messages"]
    wrong: dict[str, list[Any]] = {
        "safe": [not safe],
        "categories": [cats + cats[:1] if cats else ["S1"]],  # a category repeated; on an allowed verdict
        "category_names": [v["category_names"] + ["Extra"]],
        "unsafe_probability": [],
        "threshold": [1.5, -0.5],
        "checked_role": [{"User": "Agent", "Agent": "User"}[v["checked_role"]]],
        "checked_message_index": sorted({index + 1, index - 1, -1} - {index}),
        "raw_output": [],
        "latency_ms": [-1.0],
        "error": ["boom"],  # an error without its code
        "error_code": ["GuardError"],  # a code without an error
        "ignored_categories": [["S0"], *([cats[:1]] if cats else [])],  # no code; both violated and ignored
        "omitted_messages": [[index], [-1], [] if omitted else [0, 0]],  # not earlier; repeated or unchecked
        "windows": [0, -1],
        "history_windows": [0 if v["history_windows"] else 1, -1],
        "cached": [],
        "prompt_tokens": [-1],
        "needs_review": [not v["needs_review"]],
        "review_threshold": [t, 1.5],  # not below the threshold; no threshold
        "languages": [],
        "out_of_depth": [[]] if v["out_of_depth"] else [],  # the reason for a review or block removed
        "status": ["error", "unsafe" if safe else "safe"],
    }
    if not safe and cats:
        wrong["unsafe_probability"].append(0.0)  # blocked under the threshold
    if not ignored and p < 1.0 and (safe or not cats):
        wrong["unsafe_probability"].append(1.0)  # allowed (or blocked only as out of depth) at the threshold
    if policy is not None:  # the policy sent has its own threshold and categories
        wrong["threshold"].append(round(t + 0.05 if t <= 0.9 else t - 0.05, 2))
        wrong["review_threshold"].append(0.1 if r is None else None)
        wrong["ignored_categories"].append(["S1"])  # not excluded by the policy
        wrong["category_names"].append(["Wrong name"] * len(cats) if cats else [])
    return {field: values for field, values in wrong.items() if values}


def mutations(name: str) -> list[tuple[str, Any]]:
    """``(field, value)`` for every mutation of the case's true answer (``DROP``: the field left out)."""
    _, policy = CASES[name]
    v, index = GENUINE[name]
    out = [(field, DROP) for field in sorted(VERDICT_FIELDS)]
    out += [(field, value) for field, values in LOOSE.items() for value in values]
    out += [(field, value) for field, values in decisions(v, index, policy).items() for value in values]
    return [(field, value) for field, value in out if field not in v or not same_json(v[field], value)]


def same_json(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def mutated(field: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(v: dict[str, Any]) -> dict[str, Any]:
        if value is DROP:
            del v[field]
        else:
            v[field] = copy.deepcopy(value)
        return v

    return mutate


#: name -> (the server's true answer, the index of the last message sent); filled by the ``genuine`` fixture.
GENUINE: dict[str, tuple[dict[str, Any], int]] = {}


@pytest.fixture(scope="module", autouse=True)
def genuine(fake):
    from llamaguard_guardrails.serve.client import _policy_json, _prepare

    for name, (_, policy) in CASES.items():
        wire, _ = _prepare(conversation_of(name), "conversation")
        sent = None if policy is None else _policy_json(policy)
        GENUINE[name] = (fake.genuine(wire, sent), 0 if isinstance(wire, str) else len(wire) - 1)


# -- the tests ------------------------------------------------------------------------------------------------


def comparable(verdict: Verdict) -> dict[str, Any]:
    return verdict.model_dump(exclude={"latency_ms"})


@pytest.mark.parametrize("name", CASES)
def test_the_true_answer_comes_back_unchanged(client, scripted, name):
    conversation, plain = conversation_of(name), PARSED if CASES[name][0] == "parsed" else conversation_of(name)
    for policy in policies(name):
        want = comparable(scripted.classify(plain, policy=policy))
        assert comparable(client.classify(conversation, policy=policy)) == want
        assert comparable(asyncio.run(client.aclassify(conversation, policy=policy))) == want
        assert [comparable(v) for v in client.classify_batch([conversation] * 2, policy=policy)] == [want, want]


def test_the_cases_cover_every_kind_of_verdict(client):
    kinds = {
        (v["safe"], v["needs_review"], bool(v["ignored_categories"]), bool(v["out_of_depth"]))
        for v, _ in GENUINE.values()
    }
    assert {(True, False, False, False), (False, False, False, False), (True, True, False, False)} <= kinds
    assert {(True, False, True, False), (True, True, False, True), (False, False, False, True)} <= kinds
    assert any(v["omitted_messages"] and v["history_windows"] for v, _ in GENUINE.values())
    assert any(v["checked_role"] == "Agent" for v, _ in GENUINE.values())


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("field", sorted(LOOSE))
def test_a_wrong_field_gives_the_fail_mode(fake, client, scripted, name, field):
    conversation = conversation_of(name)
    cases = [(f, value) for f, value in mutations(name) if f == field]
    assert cases, f"no mutation of {field}"
    closed, open_ = policies(name)[0], policies(name)[-1]  # the same policy, in each fail mode (or none sent)
    for n, (_, value) in enumerate(cases):
        mutate = mutated(field, value)
        unreadable = isinstance(value, float) and not math.isfinite(value)  # NaN, Infinity: not JSON at all
        fake.mutate = lambda v, item, mutate=mutate: mutate(v)
        assert_fail_mode(client.classify(conversation, policy=open_), open_)
        if n == 0:
            assert_fail_mode(asyncio.run(client.aclassify(conversation, policy=closed)), closed)
        fake.mutate = lambda v, item, mutate=mutate: mutate(v) if item == 1 else v
        first, second = client.classify_batch([conversation, conversation], policy=closed)
        assert_fail_mode(second, closed)
        if unreadable:  # the whole answer
            assert_fail_mode(first, closed)
        else:  # that item only
            assert first.error is None and first.safe is GENUINE[name][0]["safe"]


@pytest.mark.parametrize("name", ["unsafe, the server's policy", "safe", "unsafe agent message"])
def test_fields_this_client_does_not_read_give_the_fail_mode(fake, client, name):
    for field in ("blocked", "kv_reused_tokens", "verdict"):
        for policy in policies(name):
            fake.mutate = lambda v, item, field=field: {**v, field: False}
            assert_fail_mode(client.classify(conversation_of(name), policy=policy), policy)


@pytest.mark.parametrize("name", CASES)
def test_an_answer_with_a_repeated_key_gives_the_fail_mode(fake, client, name):
    """Whichever value a reader keeps (Python's json keeps the last), an answer with a repeated key has no one
    meaning: a field repeated with its own value, or ``safe`` with the other, first or last, refuses the answer
    (of a batch: the whole answer, every item)."""
    conversation = conversation_of(name)
    true, _ = GENUINE[name]
    policy = policies(name)[-1]
    for field in sorted(true):
        for value in [true[field]] + ([not true["safe"]] if field == "safe" else []):
            pair = f"{json.dumps(field)}: {json.dumps(value)}"
            for first in (True, False):

                def repeated(v: dict[str, Any], pair=pair, first=first) -> str:
                    text = json.dumps(v)
                    return "{" + pair + ", " + text[1:] if first else text[:-1] + ", " + pair + "}"

                fake.mutate = lambda v, item, repeated=repeated: Raw(repeated(v).encode())
                assert_fail_mode(client.classify(conversation, policy=policy), policy)
                fake.mutate = None
                fake.batch = lambda items, repeated=repeated: Raw(
                    f'{{"verdicts": [{repeated(items[0])}, {json.dumps(items[1])}]}}'.encode()
                )
                for verdict in client.classify_batch([conversation, conversation], policy=policy):
                    assert_fail_mode(verdict, policy)
                fake.batch = None


@pytest.mark.parametrize("item", [None, "x", 1, 0.5, True, [], ["safe"]], ids=repr)
@pytest.mark.parametrize("name", ["safe", "unsafe agent message", "safe, the server's policy"])
def test_a_batch_item_that_is_not_an_object_gives_the_fail_mode_for_that_item(fake, client, scripted, name, item):
    conversation = conversation_of(name)
    fake.mutate = lambda v, n: item if n == 1 else v
    for policy in policies(name):
        first, second, third = client.classify_batch([conversation] * 3, policy=policy)
        assert_fail_mode(second, policy)
        assert first.error is None and third.error is None
        assert comparable(first) == comparable(third) == comparable(scripted.classify(conversation, policy=policy))


@pytest.mark.parametrize(
    "answer",
    [
        {"verdicts": "x"},
        {"verdicts": 5},
        {"verdicts": None},
        {},
        {"verdicts": []},
        "verdicts",
        [],
        None,
        Raw(b'{"verdicts": [], "verdicts": []}'),
        Raw(b'{"verdicts": [NaN]}'),
        Raw(b"not json"),
    ],
    ids=repr,
)
def test_a_batch_answer_that_is_not_a_list_of_verdicts_gives_the_fail_mode(fake, client, answer):
    fake.batch = lambda items: answer
    for policy in policies("safe"):
        verdicts = client.classify_batch(["hello", "hi"], policy=policy)
        assert len(verdicts) == 2
        for verdict in verdicts:
            assert_fail_mode(verdict, policy)


def test_a_batch_answer_with_more_than_verdicts_gives_the_fail_mode(fake, client):
    fake.batch = lambda items: {"verdicts": items, "blocked": [True, True]}
    for verdict in client.classify_batch(["hello", "hi"]):
        assert_fail_mode(verdict, None)


@pytest.mark.parametrize("name", ["safe", "grey zone review", "parsed conversation"])
def test_a_verdict_on_another_message_gives_the_fail_mode(fake, client, name):
    """Every (role, index) but the last message sent, as the reviewer's repro sent it (a verdict on message 0)."""
    conversation = conversation_of(name)
    true, index = GENUINE[name]
    for other in range(-1, index + 3):
        for role in ("User", "Agent"):
            if (role, other) == (true["checked_role"], index):
                continue
            fake.mutate = lambda v, item, role=role, other=other: {
                **v,
                "checked_role": role,
                "checked_message_index": other,
            }
            for policy in policies(name):
                assert_fail_mode(client.classify(conversation, policy=policy), policy)


def test_the_reviewers_answers_give_the_fail_mode(fake, client):
    """The answers of the review (found in 03_client_odd_answers.py), on a 2-message conversation whose last message
    is the assistant's."""
    conversation = conversation_of("unsafe agent message")
    answers = [
        {"safe": True, "unsafe_probability": 0.01, "checked_role": "User", "checked_message_index": 0},
        {
            "safe": True,
            "unsafe_probability": 0.99,
            "threshold": 0.5,
            "categories": ["S9"],
            "checked_role": "Agent",
            "checked_message_index": 1,
        },
        {
            "safe": True,
            "unsafe_probability": 0.0,
            "status": "error",
            "checked_role": "Agent",
            "checked_message_index": 1,
        },
        {"safe": True, "unsafe_probability": 0.0},
        {"safe": "yes", "unsafe_probability": 0.0},
        Raw(b'{"safe": false, "unsafe_probability": 1.0, "safe": true, "unsafe_probability": 0.0}'),
    ]
    true, _ = GENUINE["unsafe agent message"]
    complete = [{**true, **a} for a in answers[:5] if isinstance(a, dict)]  # the same, with every other field true
    for answer in answers + complete:
        fake.mutate = lambda v, item, answer=answer: answer
        for policy in policies("unsafe agent message"):
            assert_fail_mode(client.classify(conversation, policy=policy), policy)
