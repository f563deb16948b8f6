"""One OpenTelemetry span per check (optional: ``pip install 'llamaguard-guardrails[tracing]'``).

Every verdict a :class:`~llamaguard_guardrails.LlamaGuard` returns is recorded as one span, a child of whatever
span is current where the check was asked for (so a check joins its caller's trace), named
``"guardrail <model>"``. Attributes follow OpenTelemetry's GenAI semantic conventions where they apply
(``gen_ai.operation.name`` = ``"guardrail"``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` and
``gen_ai.usage.cache_read.input_tokens`` (tokens whose KV the backend reused),
``gen_ai.evaluation.*`` with the unsafe probability as score and the outcome as label, ``error.type``) and
``llamaguard.*`` for the rest: stage, outcome, categories, unsafe probability, thresholds, batch size, latency,
verdict-cache hit, windows, languages, out-of-depth reasons, error.

The checked content is never recorded unless asked for: :func:`capture_content` (or the GenAI convention's
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``) adds it as ``gen_ai.input.messages`` to checks that
know it (the LangChain adapters' and :func:`checking`'s). Without ``opentelemetry-api`` nothing here costs more
than a ``None`` check; with it but no SDK configured, spans are non-recording and no attribute is built.

Adapters and servers say which stage a check is for with ``with checking("input"):`` around the guard call; a
server joins its caller's trace with :func:`attach_context` (W3C ``traceparent`` headers)::

    with attach_context(request.headers), checking("input"):
        verdict = guard.classify(messages)
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .core.verdict import Verdict

try:  # optional: tracing costs nothing without it
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    trace = None  # type: ignore[assignment]

TRACER_NAME = "llamaguard_guardrails"
OPERATION = "guardrail"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@dataclass(frozen=True)
class _Check:
    stage: str | None
    content: Any = None


_current: contextvars.ContextVar[_Check | None] = contextvars.ContextVar("llamaguard_check", default=None)
_capture: bool | None = None
_provider: Any = None


def use_tracer_provider(provider: Any) -> None:
    """Record spans with ``provider`` instead of the global one (``None``: the global one again)."""
    global _provider
    _provider = provider


def capture_content(enabled: bool | None = True) -> None:
    """Record the checked content on spans (``True``), never (``False``), or as the environment says (``None``)."""
    global _capture
    _capture = enabled


def _capturing() -> bool:
    if _capture is not None:
        return _capture
    return os.environ.get(CAPTURE_ENV, "").strip().lower() == "true"


@contextlib.contextmanager
def checking(stage: str | None, content: Any = None) -> Iterator[None]:
    """Checks run inside are for ``stage`` (``"input"``, ``"tool_call"`` ...); ``content`` (what is checked) goes on
    their span only when content capture is on."""
    token = _current.set(_Check(stage, content))
    try:
        yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def attach_context(carrier: Mapping[str, str]) -> Iterator[None]:
    """Make the trace context in ``carrier`` (e.g. an HTTP request's headers: ``traceparent``, ``tracestate``) the
    current one, so checks inside join the caller's trace. A no-op without ``opentelemetry-api``."""
    if trace is None:
        yield
        return
    token = otel_context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


def context_headers() -> dict[str, str]:
    """The current trace context as HTTP headers (``traceparent`` ...), for a call to a served guard: its checks then
    join the caller's trace. Empty without ``opentelemetry-api`` or outside a trace."""
    if trace is None:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def record_check(verdict: Verdict, *, model: str = "", backend: str = "", batch_size: int = 1) -> None:
    """One span for one check that ended now and took ``verdict.latency_ms``; never raises."""
    if trace is None:
        return
    try:
        _record(verdict, model, backend, batch_size)
    except Exception:
        import logging

        logging.getLogger("llamaguard_guardrails").debug("could not record the check's span", exc_info=True)


def _record(verdict: Verdict, model: str, backend: str, batch_size: int) -> None:
    end = time.time_ns()
    start = end - int(verdict.latency_ms * 1e6)
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=_provider)
    span = tracer.start_span(
        f"{OPERATION} {model}".strip(), kind=SpanKind.INTERNAL, start_time=start, record_exception=False
    )
    if span.is_recording():
        span.set_attributes(attributes(verdict, model=model, backend=backend, batch_size=batch_size))
        if verdict.error is not None:
            span.set_status(Status(StatusCode.ERROR, verdict.error))
    span.end(end_time=end)


def attributes(verdict: Verdict, *, model: str = "", backend: str = "", batch_size: int = 1) -> dict[str, Any]:
    """The span attributes of ``verdict`` (content only when capture is on and the check's content is known)."""
    check = _current.get()
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.evaluation.name": "llama_guard",
        "gen_ai.evaluation.score.value": verdict.unsafe_probability,
        "gen_ai.evaluation.score.label": verdict.outcome,
        "llamaguard.outcome": verdict.outcome,
        "llamaguard.safe": verdict.safe,
        "llamaguard.categories": list(verdict.categories),
        "llamaguard.unsafe_probability": verdict.unsafe_probability,
        "llamaguard.threshold": verdict.threshold,
        "llamaguard.checked_role": verdict.checked_role,
        "llamaguard.batch_size": batch_size,
        "llamaguard.latency_ms": verdict.latency_ms,
        "llamaguard.cached": verdict.cached,
        "llamaguard.windows": verdict.windows,
        "llamaguard.trusted": verdict.trusted,
    }
    optional: dict[str, Any] = {
        "gen_ai.request.model": model,
        "llamaguard.backend": backend,
        "gen_ai.usage.input_tokens": verdict.prompt_tokens,
        "gen_ai.usage.cache_read.input_tokens": verdict.kv_reused_tokens,
        "llamaguard.review_threshold": verdict.review_threshold,
        "llamaguard.languages": list(verdict.languages),
        "llamaguard.out_of_depth": list(verdict.out_of_depth),
        "llamaguard.ignored_categories": list(verdict.ignored_categories),
        "llamaguard.stage": check.stage if check else None,
        "error.type": verdict.error.split(":", 1)[0] if verdict.error else None,
        "llamaguard.error": verdict.error,
    }
    attrs.update({k: v for k, v in optional.items() if v not in (None, "", [], 0)})
    if check is not None and check.content is not None and _capturing():
        attrs["gen_ai.input.messages"] = json.dumps(check.content, ensure_ascii=False, default=str)
    return attrs


__all__ = [
    "CAPTURE_ENV",
    "attach_context",
    "attributes",
    "capture_content",
    "checking",
    "record_check",
    "use_tracer_provider",
]
