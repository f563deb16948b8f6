"""A guard served over HTTP: :class:`RemoteGuard`, what ``LlamaGuard.from_server(url)`` returns.

The seam is the whole check, not the forward pass. The server runs the core (prompt, windows, policy,
decision) and returns its :class:`~llamaguard_guardrails.Verdict`; this client sends the conversation and
the policy and hands that verdict back unchanged. So there is one decision, the core's, on the server, and
clients need no tokenizer, no torch work and no copy of the prompt format (a score-level remote, like the
vLLM backend, would need the tokenizer on every client and ship pixel tensors instead of image bytes).

What stays here is only what cannot be decided remotely: a check the server could not answer (unreachable,
5xx, a missed deadline, a malformed answer) gets the policy's fail-mode verdict from the core
(:func:`~llamaguard_guardrails.core.decision.failure_verdict`), exactly as a failing local model does; a
request the server refuses as bad input raises the same typed error ``LlamaGuard.classify`` raises.

It has the methods the adapters use (``classify``, ``aclassify``, ``classify_batch``, ``check``, ``acheck``,
``close``, ``policy``, ``on_verdict``, ``model_name``), and ``LlamaGuard.from_server`` returns it as a subclass of
``LlamaGuard`` (:func:`remote_class`: adapters that check the type, like LangChain's pydantic fields, accept it),
so LangChain, the Llama Stack provider, ``moderate`` and ``evaluate`` run on a shared server unchanged. This
module never imports the facade (``loading.py`` hands the class in).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from .. import tracing
from ..core.categories import CATEGORY_CODE, category_name
from ..core.conversation import Conversation
from ..core.decision import failure_verdict, raise_unless_allowed
from ..core.errors import (
    GuardClosedError,
    GuardError,
    GuardTimeoutError,
    InvalidConversationError,
    InvalidImageError,
    InvalidPolicyError,
)
from ..core.images import MAX_IMAGE_BYTES
from ..core.json_text import loads_unambiguous
from ..core.policy import DEFAULT_POLICY, Policy
from ..core.verdict import Verdict
from ..enforce import OnVerdict, report

log = logging.getLogger("llamaguard_guardrails")

VerdictSink = Callable[[Verdict], Any]
_CLOSED = "this RemoteGuard is closed"
#: Seconds added to a policy's deadline for the network (the server enforces the deadline itself).
NETWORK_MARGIN_S = 5.0


class ServerError(GuardError):
    """The server answered a check with an error, or not at all (becomes the policy's fail-mode verdict)."""


class RemoteGuard:
    """A Llama Guard 4 on a ``llamaguard-guardrails serve`` server. Thread-safe; share one instance.

    ``timeout_s``: the HTTP timeout of a check without a ``policy.timeout_s`` (with one: that deadline plus
    :data:`NETWORK_MARGIN_S`). ``max_retries``: retries of a request the server refused as busy (429/503 with
    ``Retry-After``). ``verify`` asks ``/v1/models`` at once, so a wrong URL or key fails here, not at the first
    check.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        policy: Policy | None = None,
        on_verdict: OnVerdict | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        batch_size: int = 32,
        verify: bool = True,
        model: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._own_policy = policy
        #: The policy whose fail mode applies when the server cannot answer (the server's policy decides otherwise).
        self.policy = policy or DEFAULT_POLICY
        self.on_verdict = on_verdict
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=self._headers, timeout=timeout_s)
        self._closed = False
        self._lock = threading.Lock()
        self.model_name = f"server:{self.url}"
        self.is_test_model = False
        self.prompt_parity: bool | None = None
        if verify:
            self.verify()

    def verify(self) -> None:
        """Ask the server which model it serves: a wrong URL, key or model raises :class:`ServerError` now."""
        try:
            response = self._http.get("/v1/models")
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach the guard server at {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise ServerError(f"the guard server at {self.url} answered {response.status_code}: {_message(response)}")
        try:
            names = [m["id"] for m in loads_unambiguous(response.content).get("data", [])]
            ready = loads_unambiguous(self._http.get("/ready").content)
            test_model = ready.get("test_model", False)
        except (ValueError, TypeError, KeyError, AttributeError, httpx.HTTPError) as exc:
            raise ServerError(f"{self.url} did not answer as a guard server does ({type(exc).__name__})") from exc
        if not all(isinstance(n, str) for n in names) or not isinstance(test_model, bool):
            raise ServerError(f"{self.url} did not answer as a guard server does (model names, readiness)")
        if self.model is not None and self.model not in names:
            raise ServerError(f"the guard server at {self.url} does not serve {self.model!r}; it serves {names}")
        self.model_name = f"server:{self.url}:{(names or ['?'])[0]}"
        self.is_test_model = test_model

    # -- what only a local guard has ------------------------------------------------------------

    backend = None  # the model runs on the server
    batcher = None

    def build_prompts(self, conversation: Any, policy: Policy | None = None) -> Any:
        raise GuardError("a served guard builds its prompts on the server; load the model locally to see them")

    def render(self, conversation: Any, policy: Policy | None = None) -> str:
        raise GuardError("a served guard builds its prompts on the server; load the model locally to see them")

    # -- checks -----------------------------------------------------------------------------------

    def classify(self, conversation: Any, *, policy: Policy | None = None) -> Verdict:
        """The server's verdict on the last message of ``conversation`` (see ``LlamaGuard.classify``)."""
        body, sent = self._body(conversation, policy)
        policy = policy or self.policy
        started = time.perf_counter()
        try:
            answer = self._post(lambda: self._http.post("/v1/guard/classify", content=body, **self._call(policy)))
        except ServerError as exc:
            return self._emit(self._failed(exc, policy, started))
        return self._emit(self._verdict(answer, policy, started, sent))

    async def aclassify(self, conversation: Any, *, policy: Policy | None = None) -> Verdict:
        """Async :meth:`classify` (its own connection per call: safe on any event loop)."""
        body, sent = self._body(conversation, policy)
        policy = policy or self.policy
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(base_url=self.url, headers=self._headers) as http:
                answer = await self._apost(lambda: http.post("/v1/guard/classify", content=body, **self._call(policy)))
        except ServerError as exc:
            return self._emit(self._failed(exc, policy, started))
        return self._emit(self._verdict(answer, policy, started, sent))

    def classify_batch(
        self,
        conversations: Iterable[Any],
        *,
        policy: Policy | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> list[Verdict]:
        """One verdict per conversation, in order (``batch_size`` conversations per request)."""
        chosen = self._chosen(policy)
        requested = self._policy(policy)
        policy = policy or self.policy
        items = list(conversations)
        size = batch_size or self.batch_size
        verdicts: list[Verdict] = []
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            started = time.perf_counter()
            prepared = [_prepare(c, f"conversation {start + n}") for n, c in enumerate(chunk)]
            body = _dumps({"conversations": [w for w, _ in prepared], **requested, **self._model()})
            try:
                answer = self._post(
                    lambda body=body: self._http.post("/v1/guard/classify_batch", content=body, **self._call(policy))
                )
                results = _verdict_list(answer, len(chunk))
                verdicts += [
                    self._verdict(v, policy, started, _Sent.of(wire, src, chosen))
                    for v, (wire, src) in zip(results, prepared)
                ]
            except ServerError as exc:
                verdicts += [self._failed(exc, policy, started) for _ in chunk]
        return [self._emit(v) for v in verdicts]

    def check(self, conversation: Any, *, policy: Policy | None = None, stage: str | None = None) -> Verdict:
        return raise_unless_allowed(self.classify(conversation, policy=policy), stage)

    async def acheck(self, conversation: Any, *, policy: Policy | None = None, stage: str | None = None) -> Verdict:
        return raise_unless_allowed(await self.aclassify(conversation, policy=policy), stage)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connections; afterwards every check raises :class:`GuardClosedError`. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._http.close()

    def __enter__(self) -> RemoteGuard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------

    def _model(self) -> dict[str, str]:
        return {"model": self.model} if self.model else {}

    def _body(self, conversation: Any, policy: Policy | None) -> tuple[bytes, _Sent]:
        if self._closed:
            raise GuardClosedError(f"{_CLOSED}: create a new one to check content")
        wire, sources = _prepare(conversation, "conversation")
        body = _dumps({"messages": wire, **self._policy(policy), **self._model()})
        return body, _Sent.of(wire, sources, self._chosen(policy))

    def _chosen(self, policy: Policy | None) -> Policy | None:
        """The policy a request sends: the call's policy, else this guard's if one was given, else none (the
        server's own policy applies)."""
        return policy or self._own_policy

    def _policy(self, policy: Policy | None) -> dict[str, Any]:
        """The policy field of a request (see :meth:`_chosen`)."""
        chosen = self._chosen(policy)
        return {} if chosen is None else {"policy": _policy_json(chosen)}

    def _call(self, policy: Policy) -> dict[str, Any]:
        timeout = self.timeout_s if policy.timeout_s is None else policy.timeout_s + NETWORK_MARGIN_S
        return {"timeout": timeout, "headers": {"content-type": "application/json", **tracing.context_headers()}}

    def _post(self, send: Callable[[], httpx.Response]) -> dict[str, Any]:
        for attempt in range(self.max_retries + 1):
            try:
                response = send()
            except httpx.TimeoutException as exc:
                raise ServerError(f"GuardTimeoutError: no answer from the guard server in time ({exc})") from exc
            except httpx.HTTPError as exc:
                if self._closed:
                    raise GuardClosedError(_CLOSED) from exc
                raise ServerError(f"the guard server at {self.url} is unreachable: {exc}") from exc
            if not _busy(response) or attempt == self.max_retries:
                return _answer(response)
            time.sleep(_retry_after(response))
        raise AssertionError("unreachable")

    async def _apost(self, send: Callable[[], Any]) -> dict[str, Any]:
        import asyncio

        for attempt in range(self.max_retries + 1):
            try:
                response = await send()
            except httpx.TimeoutException as exc:
                raise ServerError(f"GuardTimeoutError: no answer from the guard server in time ({exc})") from exc
            except httpx.HTTPError as exc:
                raise ServerError(f"the guard server at {self.url} is unreachable: {exc}") from exc
            if not _busy(response) or attempt == self.max_retries:
                return _answer(response)
            await asyncio.sleep(_retry_after(response))
        raise AssertionError("unreachable")

    def _verdict(self, answer: Any, policy: Policy, started: float, sent: _Sent) -> Verdict:
        """The server's verdict, unchanged but for the latency (this client's round trip) and, for a parsed
        :class:`Conversation`, its message indices. An answer this client cannot trust gets this policy's fail mode:
        an undecided verdict (``error`` set), one that is malformed (a field missing or unknown, a loose type), or
        one that is not the core's decision on what was sent (see :func:`_read_verdict`, :func:`_inconsistency`)."""
        try:
            verdict = _read_verdict(answer)
        except ServerError as exc:
            return self._failed(exc, policy, started)
        if verdict.error is not None:
            return self._failed(ServerError(verdict.error), policy, started)
        problem = _inconsistency(verdict, sent)
        if problem is not None:
            message = f"the guard server sent a verdict that is not a decision on what was sent: {problem}"
            return self._failed(ServerError(message), policy, started)
        if sent.sources is not None:
            verdict = _renumbered(verdict, sent.sources)
        return verdict.model_copy(update={"latency_ms": (time.perf_counter() - started) * 1000})

    def _failed(self, exc: ServerError, policy: Policy, started: float) -> Verdict:
        if self._closed:
            raise GuardClosedError(f"{_CLOSED} while the check ran ({exc})")
        error: BaseException = GuardTimeoutError(str(exc)) if "GuardTimeoutError" in str(exc) else exc
        return failure_verdict(error, policy, latency_ms=(time.perf_counter() - started) * 1000)

    def _emit(self, verdict: Verdict) -> Verdict:
        return report(verdict, "input" if verdict.checked_role == "User" else "output", self.on_verdict)


_REMOTE_CLASSES: dict[type, type] = {}


def remote_class(base: type) -> type[RemoteGuard]:
    """:class:`RemoteGuard` as a subclass of ``base`` (``LlamaGuard``), for callers that check the type.

    Every public method of the result is :class:`RemoteGuard`'s; ``base.__init__`` never runs (no model, batcher
    or pool is made here).
    """
    if base not in _REMOTE_CLASSES:
        doc = f"A {base.__name__} whose checks run on a guard server (see :class:`RemoteGuard`)."
        _REMOTE_CLASSES[base] = type(f"Remote{base.__name__}", (RemoteGuard, base), {"__doc__": doc})
    return _REMOTE_CLASSES[base]


# -- the wire -------------------------------------------------------------------------------------------


def _policy_json(policy: Policy) -> dict[str, Any]:
    """The whole policy as the server takes it (its ``Policy``, every field: none is lost on the way).
    ``fail_mode`` is applied here: the server answers a check it cannot decide with an error, never a verdict."""
    return policy.model_dump(mode="json", exclude={"fail_mode"})


def _prepare(conversation: Any, where: str) -> tuple[Any, list[int] | None]:
    """A conversation as JSON data, and for a parsed :class:`Conversation` the source message of each message sent."""
    if isinstance(conversation, Conversation):
        return _conversation_messages(conversation)
    return _wire(conversation, where), None


def _conversation_messages(conversation: Conversation) -> tuple[list[dict[str, Any]], list[int]]:
    """A parsed conversation as OpenAI messages, one per block (its texts, then its images), that the server parses
    back into the same blocks; and each block's source message index (the server numbers the messages it got)."""
    messages, sources = [], []
    for role, block in conversation.blocks():
        parts: list[dict[str, Any]] = [{"type": "text", "text": text} for text in block.texts]
        parts += [{"type": "image", "image": _wire(image, "image")} for image in block.images]
        messages.append({"role": "user" if role == "User" else "assistant", "content": parts})
        sources.append(block.source)
    return messages, sources


def _renumbered(verdict: Verdict, sources: list[int]) -> Verdict:
    """A verdict on messages sent for a parsed conversation, with the conversation's own message indices."""
    index = verdict.checked_message_index
    update = {
        "checked_message_index": sources[index] if index >= 0 else index,
        "omitted_messages": sorted({sources[i] for i in verdict.omitted_messages}),
    }
    return verdict.model_copy(update=update)


# -- the answer ------------------------------------------------------------------------------------------

#: The fields of a verdict on the wire: every field of :class:`Verdict` the server writes (``verdict_json``), each
#: required (a field left out would take the model's default, a decision nobody made), plus ``status``.
VERDICT_FIELDS = frozenset(name for name, field in Verdict.model_fields.items() if not field.exclude)
_STATUS = "status"


@dataclass(frozen=True)
class _Sent:
    """What a request sent for one conversation, so what a verdict on it must say: the checked message (its role
    and index in the messages sent: the last one), how many messages, their source indices for a parsed
    :class:`Conversation`, and the policy sent (``None``: the server's own applies, which this client does not
    know)."""

    role: str | None  # None: this client cannot tell which message the server checks (it must refuse the request)
    index: int
    sources: list[int] | None
    policy: Policy | None

    @classmethod
    def of(cls, wire: Any, sources: list[int] | None, policy: Policy | None) -> _Sent:
        if isinstance(wire, str):  # one user message
            return cls("User", 0, sources, policy)
        if isinstance(wire, list) and wire and isinstance(wire[-1], dict):
            # The core's mapping: an assistant message is the Agent's; every other role (user, system, developer,
            # tool, function) is User input. Every message gives at least one block, so the last is the one checked.
            role = "Agent" if wire[-1].get("role") == "assistant" else "User"
            return cls(role, len(wire) - 1, sources, policy)
        return cls(None, -1, sources, policy)


def _verdict_list(answer: dict[str, Any], expected: int) -> list[Any]:
    """The ``verdicts`` of a batch answer: a list of one item per conversation sent, and nothing else."""
    unknown = sorted(set(answer) - {"verdicts"})
    if unknown:
        raise ServerError(f"the guard server's batch answer has fields this client does not read: {unknown}")
    results = answer.get("verdicts")
    if not isinstance(results, list):
        raise ServerError(f"the guard server answered a batch with no list of verdicts ({type(results).__name__})")
    if len(results) != expected:
        raise ServerError(f"the server answered {len(results)} verdicts for {expected}")
    return results


def _read_verdict(answer: Any) -> Verdict:
    """A verdict object as the server writes it: every field present, none unknown, strict types (``"yes"`` is not a
    bool, ``1`` not a bool, ``1.0`` not an index), ``status`` (when present) and ``error_code`` agreeing with
    ``error``. Anything else raises :class:`ServerError`."""
    if not isinstance(answer, dict):
        raise ServerError(f"the guard server sent a verdict that is not a JSON object ({type(answer).__name__})")
    missing = sorted(VERDICT_FIELDS - set(answer))
    unknown = sorted(set(answer) - VERDICT_FIELDS - {_STATUS})
    if missing or unknown:
        what = "; ".join(
            f"{kind} fields {names}" for kind, names in (("missing", missing), ("unknown", unknown)) if names
        )
        raise ServerError(f"the guard server sent a malformed verdict: {what}")
    try:
        verdict = Verdict.model_validate({k: v for k, v in answer.items() if k != _STATUS}, strict=True)
    except ValueError as exc:
        raise ServerError(f"the guard server sent a malformed verdict: {exc}") from None
    if _STATUS in answer and answer[_STATUS] != verdict.status:
        raise ServerError(f"the guard server sent a verdict whose status is not {verdict.status!r}")
    if (verdict.error is None) != (verdict.error_code is None):
        raise ServerError("the guard server sent a verdict with only one of error and error_code")
    return verdict


def _inconsistency(verdict: Verdict, sent: _Sent) -> str | None:
    """Why a decided verdict (``error`` unset) cannot be the core's decision on what was sent, or ``None``.

    The rules are those of :mod:`~llamaguard_guardrails.core.decision` (each a necessary condition, so a verdict
    the core makes always passes): the verdict is on the last message sent, under the policy sent; a block needs
    the threshold reached with a category the policy keeps (or an out-of-depth block); an allowed verdict at or
    over the threshold needs a window the policy cleared (only excluded categories); categories on a safe verdict
    need review; review needs the grey zone (or out-of-depth review); omitted messages are earlier ones, each
    checked in a history window.
    """
    policy = sent.policy
    p, t, r = verdict.unsafe_probability, verdict.threshold, verdict.review_threshold
    reasons = bool(verdict.out_of_depth)
    depth = policy.out_of_depth if policy is not None else None  # None: the server's policy, unknown here
    if sent.role is None:
        return "this client cannot tell which message of what it sent is checked"
    if (verdict.checked_role, verdict.checked_message_index) != (sent.role, sent.index):
        return (
            f"it checks {verdict.checked_role} message {verdict.checked_message_index}, not the last message sent "
            f"({sent.role} message {sent.index})"
        )
    omitted = verdict.omitted_messages
    if omitted != sorted(set(omitted)) or any(not 0 <= i < sent.index for i in omitted):
        return f"omitted_messages {omitted} are not distinct earlier messages, in order"
    if verdict.windows < 1 or verdict.history_windows < 0 or bool(omitted) != (verdict.history_windows > 0):
        return (
            f"{verdict.windows} windows and {verdict.history_windows} history windows for "
            f"{len(omitted)} omitted messages"
        )
    if verdict.prompt_tokens < 0 or not (math.isfinite(verdict.latency_ms) and verdict.latency_ms >= 0):
        return "a negative token count or latency"
    if policy is not None:
        if t != policy.threshold or r != policy.review_threshold:
            return (
                f"threshold {t} / review_threshold {r}, not the policy's {policy.threshold} / {policy.review_threshold}"
            )
        kept = policy.categories(has_images=False)
        if any(c not in kept for c in verdict.categories):
            return f"categories {verdict.categories} are not all kept by the policy"
        if any(c not in policy.excluded_categories for c in verdict.ignored_categories):
            return f"ignored_categories {verdict.ignored_categories} are not all excluded by the policy"
        names = [category_name(c, policy.custom_names) for c in verdict.categories]
        if verdict.category_names != names:
            return "category_names are not the policy's names of the categories"
    else:
        if not 0.0 <= t <= 1.0 or (r is not None and not 0.0 <= r < t):
            return f"threshold {t} / review_threshold {r} is no policy's"
        codes = verdict.categories + verdict.ignored_categories
        if any(not CATEGORY_CODE.match(c) for c in codes):
            return "a category that is not a category code"
        if len(verdict.category_names) != len(verdict.categories):
            return "category_names do not name the categories"
    categories, ignored = verdict.categories, verdict.ignored_categories
    if len(set(categories)) != len(categories) or len(set(ignored)) != len(ignored) or set(categories) & set(ignored):
        return "a category repeated, or both violated and ignored"
    if not verdict.safe:
        if verdict.needs_review:
            return "blocked and in review at once"
        if p >= t and categories:  # a window blocked it: the threshold reached, with a category the policy keeps
            return None
        if reasons and depth in ("block", None) and not categories:
            # out_of_depth="block" blocked a verdict that was allowed: it must have been one
            return _allowed_inconsistency(verdict, None)
        return f"blocked with p={p} under threshold {t}, or with no category the policy keeps"
    return _allowed_inconsistency(verdict, depth)


def _allowed_inconsistency(verdict: Verdict, depth: str | None) -> str | None:
    """Why an allowed (or in review) verdict cannot be the core's (see :func:`_inconsistency`), or ``None``.
    ``depth``: the policy's ``out_of_depth`` (``None``: unknown, or already applied)."""
    p, t, r = verdict.unsafe_probability, verdict.threshold, verdict.review_threshold
    categories, ignored, reasons = verdict.categories, verdict.ignored_categories, bool(verdict.out_of_depth)
    if p >= t and not ignored:  # a window at the threshold is allowed only when the policy cleared its categories
        return f"allowed with p={p} at or over threshold {t} and no category the policy excludes"
    if categories and not (verdict.needs_review and r is not None and p >= r):
        return f"allowed with categories {categories} outside review in the grey zone (review_threshold {r})"
    if verdict.needs_review:
        if not (r is not None and p >= r) and not (reasons and depth in ("review", None)):
            return f"in review with p={p} outside the grey zone (review_threshold {r})"
        return None
    if r is not None and p >= r and not ignored:
        return f"allowed with p={p} in the grey zone from {r} and no category the policy excludes"
    if reasons and depth in ("review", "block"):
        return f"allowed while out of depth ({verdict.out_of_depth}) under out_of_depth={depth!r}"
    return None


def _wire(value: Any, where: str) -> Any:
    """``value`` as JSON data: image bytes, PIL images and ``pathlib.Path`` images (this process's own, trusted
    as in ``LlamaGuard``) become data URLs; strings pass as they are (a path string stays a string, and the
    server refuses it, as the local guard does by default)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): _wire(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire(v, where) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _data_url(bytes(value))
    if isinstance(value, os.PathLike):
        try:
            with open(value, "rb") as file:
                data = file.read(MAX_IMAGE_BYTES + 1)  # never more than a conversation's image budget
        except OSError as exc:
            raise InvalidConversationError(f"{where}: image file {os.fspath(value)!r} cannot be read ({exc})") from exc
        if len(data) > MAX_IMAGE_BYTES:
            raise InvalidImageError(
                f"{where}: image file {os.fspath(value)!r} is larger than {MAX_IMAGE_BYTES} bytes, a conversation's "
                "image budget: send a smaller image"
            )
        return _data_url(data)
    if hasattr(value, "save") and hasattr(value, "size"):  # a PIL image
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return _data_url(buffer.getvalue())
    raise InvalidConversationError(
        f"{where}: a {type(value).__name__} cannot be sent to a guard server; pass OpenAI-format messages "
        "(strings, dicts, lists; images as bytes, data URLs, PIL images or pathlib.Path)"
    )


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def _busy(response: httpx.Response) -> bool:
    return response.status_code in (429, 503) and "retry-after" in response.headers


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers["retry-after"]), 10.0)
    except ValueError:
        return 1.0


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a 200; a 400 raises the typed error ``LlamaGuard.classify`` raises; any other status is a
    :class:`ServerError` (the caller's fail mode)."""
    if response.status_code == 200:
        try:  # a repeated key has no one meaning (this client would keep the last, another reader the first)
            answer = loads_unambiguous(response.content)
        except ValueError as exc:
            raise ServerError(f"the guard server answered with invalid JSON: {response.text[:200]!r}") from exc
        if not isinstance(answer, dict):
            raise ServerError("the guard server answered with something other than a JSON object")
        return answer
    message = _message(response)
    if response.status_code == 400:
        param = ""
        try:
            param = response.json()["error"].get("param") or ""
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        raise (InvalidPolicyError if param.startswith("policy") else InvalidConversationError)(message)
    if response.status_code == 504:
        raise ServerError(f"GuardTimeoutError: {message}")
    raise ServerError(f"the guard server answered {response.status_code}: {message}")
