"""The ASGI app: ``/v1/moderations`` (OpenAI), ``/v1/guard/classify`` (the core's full fidelity), health, metrics.

One guard per process, shared by every request: checks run off the event loop through ``aclassify``, so
concurrent requests meet in the guard's micro-batcher and share forward passes, and a text that extends an
earlier request's text reuses that request's KV (the transformers backend's prefix store).

Fail closed: a check that errs or misses its deadline is an HTTP error (500 / 504, JSON body), never a
verdict that lets content through; a full queue is 429 with ``Retry-After``; a body over the limit 413; bad
input 400 (unknown model 404, missing key 401), each saying what to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from .. import tracing
from ..core.errors import GuardClosedError, InvalidConversationError, InvalidPolicyError, shown_name
from ..core.policy import Policy
from ..core.verdict import Verdict
from .body import StrictJSONRoute
from .mapping import moderation_result
from .metrics import ServeMetrics
from .schemas import ClassifyBatchRequest, ClassifyRequest, ModerationRequest
from .settings import ServeSettings

log = logging.getLogger("llamaguard_guardrails.serve")

GuardSource = Any  # a loaded guard, or a callable that loads one (run in a thread at startup)


class ServeError(Exception):
    """An HTTP error with an OpenAI-style JSON body."""

    def __init__(
        self, status: int, message: str, *, kind: str, code: str | None = None, param: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param
        self.headers: dict[str, str] = extra.pop("headers", {})
        self.extra = extra

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": error, **self.extra}, status_code=self.status, headers=self.headers)


def create_app(source: GuardSource, settings: ServeSettings | None = None, *, warm: bool = True) -> Gate:
    """The ASGI app serving ``source`` (a :class:`~llamaguard_guardrails.LlamaGuard`, or a function returning one):
    the FastAPI app behind a :class:`Gate` (API keys, body limit); run it with uvicorn or Ray Serve.

    The guard is loaded (if a function) and warmed in a thread at startup; ``/ready`` answers 200 after that,
    ``/health`` from the start. At shutdown requests in flight finish, ``/ready`` turns 503, and a guard the
    app loaded itself is closed.
    """
    settings = settings or ServeSettings()
    if hasattr(source, "classify"):
        refuse_local_paths(source)
    state = _State(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(asyncio.to_thread(state.load, source, warm))
        try:
            yield
        finally:
            state.draining = True
            loading.cancel()
            state.unload(owned=not hasattr(source, "classify"))

    app = FastAPI(title="Llama Guard 4 moderation", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.router.route_class = StrictJSONRoute  # a body that readers may take differently is a 400 (body.py)
    app.state.serve = state
    _install_handlers(app, state)
    _install_routes(app, state)
    return Gate(app, settings.max_body_bytes)


def refuse_local_paths(guard: Any) -> None:
    """A served guard never opens a file a client names: one built with ``allow_local_image_paths=True`` (paths and
    ``file://`` URLs in image strings) is refused before it serves anything."""
    if getattr(guard, "allow_local_image_paths", False):
        raise ValueError(
            "this guard opens image paths and file:// URLs named in the content (allow_local_image_paths=True): "
            "serving it would let any client read files on the server. Build the served guard without it"
        )


class _State:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = ServeMetrics()
        self.guard: Any = None
        self.ready = False
        self.draining = False
        self.load_error: str | None = None
        self.pending = 0
        self._restore: Callable[[], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def load(self, source: GuardSource, warm: bool) -> None:
        try:
            guard = source if hasattr(source, "classify") else source()
            refuse_local_paths(guard)
            self._restore = _observe_batches(guard, self.metrics)
            self.metrics.watch_kv_store(getattr(guard, "backend", None))
            if warm:
                guard.classify("warm up")
            self.guard = guard
            self.ready = not self.draining
            log.info("ready: %s", getattr(guard, "model_name", "guard"))
        except Exception as exc:  # noqa: BLE001 - reported by /ready; the CLI stops the server
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("the guard failed to load: %s", self.load_error)

    def unload(self, *, owned: bool) -> None:
        self.ready = False
        if self._restore is not None:
            self._restore()
        if owned and self.guard is not None:
            self.guard.close()

    # -- checks ------------------------------------------------------------------------------------

    def usable_guard(self) -> Any:
        if self.draining:
            raise ServeError(503, "the server is shutting down", kind="server_error", code="shutting_down")
        if self.guard is None:
            message = f"the guard failed to load: {self.load_error}" if self.load_error else "the guard is loading"
            raise ServeError(
                503,
                message,
                kind="server_error",
                code="not_ready",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        return self.guard

    @contextlib.contextmanager
    def admit(self, count: int):
        """Admit ``count`` checks, or 429 when the queue would exceed ``max_pending``. Checks whose requests ended
        at their deadline (504) or whose clients left still hold the model until they finish: they count too."""
        limit = self.settings.max_pending
        busy = self.pending + getattr(self.guard, "abandoned_checks", 0)
        if busy + count > limit:
            self.metrics.errors.labels("queue_full").inc()
            raise ServeError(
                429,
                f"the server is busy ({busy} checks pending, limit {limit}): retry after "
                f"{self.settings.retry_after_s} s",
                kind="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        self.pending += count
        self.metrics.pending.set(self.pending)
        try:
            yield
        finally:
            self.pending -= count
            self.metrics.pending.set(self.pending)

    def policy(self, request: Policy | None) -> Policy:
        """The request's policy within the server's limits (the server's own policy when none is given): its
        deadline capped at the server's, fail-closed (a failed check is an HTTP error), custom categories bounded."""
        deadline = self.settings.timeout_s
        chosen = self.usable_guard().policy if request is None else request
        custom = len(chosen.custom_categories)
        if request is not None and custom > self.settings.max_custom_categories:
            raise ServeError(
                400,
                f"policy.custom_categories holds {custom} categories; this server accepts at most "
                f"{self.settings.max_custom_categories}",
                kind="invalid_request_error",
                param="policy.custom_categories",
            )
        timeout = min(chosen.timeout_s or deadline, deadline)
        try:
            return chosen.model_copy(update={"timeout_s": timeout, "fail_mode": "closed"})
        except InvalidPolicyError as exc:
            raise ServeError(400, str(exc), kind="invalid_request_error", param="policy") from exc

    async def check_all(
        self, conversations: Sequence[Any], policy: Policy, where: Callable[[int], str]
    ) -> list[Verdict]:
        """Classify each conversation (concurrently: they join other requests' batches); a bad one is a 400."""
        guard = self.usable_guard()
        with self.admit(len(conversations)):
            outcomes = await asyncio.gather(
                *(guard.aclassify(c, policy=policy) for c in conversations), return_exceptions=True
            )
        verdicts = []
        for n, outcome in enumerate(outcomes):
            if isinstance(outcome, InvalidConversationError):
                raise ServeError(400, f"{where(n)}: {outcome}", kind="invalid_request_error", param=where(n))
            if isinstance(outcome, InvalidPolicyError):
                raise ServeError(400, str(outcome), kind="invalid_request_error", param="policy")
            if isinstance(outcome, GuardClosedError):
                raise ServeError(503, f"{outcome}", kind="server_error", code="shutting_down")
            if isinstance(outcome, BaseException):
                raise outcome
            self.metrics.verdict(outcome)
            verdicts.append(outcome)
        return verdicts

    def check_model(self, model: str | None) -> None:
        names = self.model_names()
        if model is not None and model not in names:
            raise ServeError(
                404,
                f"model {shown_name(model)} is not served here; leave `model` out or use one of {names}",
                kind="invalid_request_error",
                code="model_not_found",
                param="model",
            )

    def model_names(self) -> list[str]:
        """The served names (the first is the one responses carry), then the guard's own model name."""
        names = list(self.settings.served_model_names)
        model_name = getattr(self.guard, "model_name", "")
        if model_name and model_name not in names:
            names.append(model_name)
        return names

    def authorize(self, header: str) -> None:
        """Check an ``Authorization`` header against the API keys (none set: everyone may call)."""
        keys = self.settings.api_keys
        if not keys:
            return
        scheme, _, token = header.partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        matched = False
        for key in keys:  # every key compared, in constant time each
            matched |= hmac.compare_digest(given, key.encode())
        if not matched:
            raise ServeError(
                401,
                "missing or wrong API key: send `Authorization: Bearer <key>`",
                kind="authentication_error",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )


def failed(verdict: Verdict) -> ServeError:
    """The HTTP error of a verdict the guard could not decide (a missed deadline is 504)."""
    timed_out = (verdict.error or "").startswith("GuardTimeoutError")
    return ServeError(
        504 if timed_out else 500,
        f"the guard could not decide: {verdict.error}",
        kind="server_error",
        code="guard_timeout" if timed_out else "guard_error",
        verdict=verdict.model_dump(mode="json") | {"status": verdict.status},
    )


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    return verdict.model_dump(mode="json") | {"status": verdict.status}


def moderation_conversations(body: ModerationRequest) -> tuple[list[Any], list[bool]]:
    """The conversations of a moderation request (one user message each), and which hold images."""
    items = body.input
    if isinstance(items, str):
        _not_empty(items, "input")
        return [[{"role": "user", "content": items}]], [False]
    if not items:
        raise ServeError(
            400, "input is an empty list: send at least one string", kind="invalid_request_error", param="input"
        )
    if all(isinstance(item, str) for item in items):
        for n, item in enumerate(items):
            _not_empty(item, f"input[{n}]")
        return [[{"role": "user", "content": item}] for item in items], [False] * len(items)
    parts = [part.model_dump() for part in items]  # content parts: one input, images with their text
    has_images = any(part["type"] == "image_url" for part in parts)
    return [[{"role": "user", "content": parts}]], [has_images]


def _install_routes(app: FastAPI, state: _State) -> None:
    def timed(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def run(request: Request, *args: Any) -> Any:
            endpoint = request.url.path
            started = time.perf_counter()
            code = 500
            try:
                with tracing.attach_context(request.headers):  # checks join the caller's trace (traceparent)
                    result = await handler(*args)
                code = 200
                return result
            except ServeError as exc:
                code = exc.status
                state.metrics.errors.labels(exc.code or exc.kind).inc()
                return exc.response()
            finally:
                state.metrics.requests.labels(endpoint, str(code)).inc()
                state.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

        return run

    async def moderations(body: ModerationRequest) -> dict[str, Any]:
        state.check_model(body.model)
        conversations, images = moderation_conversations(body)
        _check_count(len(conversations), state.settings.max_inputs, "input")
        policy = state.policy(None)
        verdicts = await state.check_all(conversations, policy, lambda n: f"input[{n}]" if len(images) > 1 else "input")
        for verdict in verdicts:
            if verdict.error is not None:
                raise failed(verdict)
        return {
            "id": f"modr-{uuid.uuid4().hex}",
            "model": state.model_names()[0],
            "results": [moderation_result(v, policy, has_images=i) for v, i in zip(verdicts, images)],
        }

    async def classify(body: ClassifyRequest) -> dict[str, Any]:
        state.check_model(body.model)
        (verdict,) = await state.check_all([body.messages], state.policy(body.policy), lambda n: "messages")
        if verdict.error is not None:
            raise failed(verdict)
        return verdict_json(verdict)

    async def classify_batch(body: ClassifyBatchRequest) -> dict[str, Any]:
        state.check_model(body.model)
        _check_count(len(body.conversations), state.settings.max_inputs, "conversations")
        if not body.conversations:
            raise ServeError(400, "conversations is empty", kind="invalid_request_error", param="conversations")
        policy = state.policy(body.policy)
        verdicts = await state.check_all(body.conversations, policy, lambda n: f"conversations[{n}]")
        return {"verdicts": [verdict_json(v) for v in verdicts]}  # an undecided one carries its error (safe: false)

    async def models() -> dict[str, Any]:
        state.usable_guard()
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "llamaguard-guardrails"}
                for name in state.model_names()
            ],
        }

    @app.post("/v1/moderations")
    async def _moderations(request: Request, body: ModerationRequest) -> Any:
        return await timed(moderations)(request, body)

    @app.post("/v1/guard/classify")
    async def _classify(request: Request, body: ClassifyRequest) -> Any:
        return await timed(classify)(request, body)

    @app.post("/v1/guard/classify_batch")
    async def _classify_batch(request: Request, body: ClassifyBatchRequest) -> Any:
        return await timed(classify_batch)(request, body)

    @app.get("/v1/models")
    async def _models(request: Request) -> Any:
        return await timed(models)(request)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Any:
        if state.ready and not state.draining:
            test_model = bool(getattr(state.guard, "is_test_model", False))
            return {"status": "ready", "model": state.model_names()[0], "test_model": test_model}
        status = "draining" if state.draining else ("failed" if state.load_error else "loading")
        return JSONResponse({"status": status, "error": state.load_error}, status_code=503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _not_empty(text: str, param: str) -> None:
    if not text.strip():
        raise ServeError(400, f"{param} is empty: send the text to check", kind="invalid_request_error", param=param)


def _check_count(count: int, limit: int, param: str) -> None:
    if count > limit:
        raise ServeError(
            400,
            f"{param} holds {count} items; this server takes at most {limit} per request: split it into several requests",
            kind="invalid_request_error",
            param=param,
        )


def _install_handlers(app: FastAPI, state: _State) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems, places = [], []
        for error in exc.errors()[:5]:
            if error.get("type") == "json_invalid":
                detail, at = (error.get("ctx") or {}).get("error", ""), error["loc"][-1]
                problems.append(f"the body cannot be read as JSON ({detail}" + (f", at character {at})" if at else ")"))
                continue
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
            places.append(where)
            problems.append(f"{where}: {error.get('msg')}")
        state.metrics.errors.labels("invalid_request").inc()
        state.metrics.requests.labels(request.url.path, "400").inc()
        message = "invalid request: " + "; ".join(problems)
        return ServeError(400, message, kind="invalid_request_error", param=(places or [None])[0]).response()

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        state.metrics.errors.labels("internal").inc()
        return ServeError(500, f"the guard failed: {type(exc).__name__}: {exc}", kind="server_error").response()


class Gate:
    """ASGI middleware in front of the app: the API key of every ``/v1/`` request (401 before anything is read),
    then the body limit (413 by Content-Length, or as the body streams in), before the app parses anything."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.state = app.state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope.get("path", "").startswith("/v1/"):
            try:
                self.state.serve.authorize(headers.get(b"authorization", b"").decode("latin-1"))
            except ServeError as exc:
                self.state.serve.metrics.errors.labels(exc.code).inc()
                self.state.serve.metrics.requests.labels(scope["path"], str(exc.status)).inc()
                await _send_error(exc, send)
                return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        too_large = replaced = False

        async def counted() -> dict[str, Any]:
            nonlocal seen, too_large
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                too_large = True
                raise _TooLarge  # the app answers it (FastAPI: 400), and that answer is replaced by the 413
            return message

        async def answer(message: dict[str, Any]) -> None:
            nonlocal replaced
            if not too_large:
                await send(message)
            elif not replaced:
                replaced = True
                await self._refuse(send)

        try:
            await self.app(scope, counted, answer)
        except _TooLarge:
            if not replaced:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        self.state.serve.metrics.errors.labels("body_too_large").inc()
        error = ServeError(
            413,
            f"the request body is larger than this server's limit of {self.limit} bytes: send fewer or smaller inputs",
            kind="invalid_request_error",
            code="body_too_large",
        )
        await _send_error(error, send)


async def _send_error(error: ServeError, send: Any) -> None:
    response = error.response()
    await send({"type": "http.response.start", "status": error.status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


def _observe_batches(guard: Any, metrics: ServeMetrics) -> Callable[[], None] | None:
    """Count the prompts of each forward pass (wraps ``guard.backend``); returns what undoes it."""
    backend = getattr(guard, "backend", None)
    if backend is None or not hasattr(backend, "score"):
        return None
    guard.backend = _ObservedBackend(backend, metrics.batch_size.observe)

    def restore() -> None:
        guard.backend = backend

    return restore


class _ObservedBackend:
    """A backend that reports each ``score`` call's batch size, then delegates everything to the real one."""

    def __init__(self, inner: Any, observe: Callable[[int], None]) -> None:
        self._inner = inner
        self._observe = observe

    def score(self, prompts: Sequence[Any]) -> Any:
        self._observe(len(prompts))
        return self._inner.score(prompts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
