"""One OpenTelemetry span per check, with the GenAI conventions' attributes, no content unless asked, in the
caller's trace (in-process and across a ``traceparent`` header)."""

from __future__ import annotations

import asyncio

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from llamaguard_guardrails import Policy, ReviewRequired, tracing
from llamaguard_guardrails.langchain import LlamaGuardMiddleware
from llamaguard_guardrails.testing import marker_category, marker_probability, scripted_guard
from test_langchain_fakes import last_turn, scripted_model, tool_call

SECRET = "the launch code is 0000"


@pytest.fixture(scope="module")
def provider():
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield provider, exporter
    tracing.use_tracer_provider(None)


@pytest.fixture
def spans(provider):
    provider[1].clear()
    tracing.capture_content(False)
    yield provider[1].get_finished_spans
    tracing.capture_content(None)


@pytest.fixture(scope="module")
def marked(test_model_dir):
    return scripted_guard(
        test_model_dir,
        lambda text: marker_category(last_turn(text)),
        probability=lambda text: marker_probability(last_turn(text)),
        cache_size=0,
        model_name="test/llama-guard",
    )


def guard_spans(spans):
    return [s for s in spans() if s.name.startswith("guardrail")]


def no_content(span, *texts):
    values = " ".join(str(v) for v in span.attributes.values())
    return not any(t in values for t in texts)


@pytest.mark.parametrize(
    ("text", "outcome"), [("hello [p=0.1]", "allow"), ("x [p=0.4] [cat=S7]", "review"), ("y [p=0.9] [cat=S1]", "block")]
)
def test_one_span_per_check_with_the_verdicts_attributes(marked, spans, text, outcome):
    verdict = marked.classify(f"{SECRET} {text}", policy=Policy(review_threshold=0.3))
    (span,) = guard_spans(spans)
    a = span.attributes
    assert span.name == "guardrail test/llama-guard" and a["gen_ai.operation.name"] == "guardrail"
    assert a["gen_ai.request.model"] == "test/llama-guard" and a["llamaguard.backend"] == "scripted"
    assert a["llamaguard.outcome"] == a["gen_ai.evaluation.score.label"] == verdict.outcome == outcome
    assert a["llamaguard.unsafe_probability"] == a["gen_ai.evaluation.score.value"] == verdict.unsafe_probability
    assert list(a.get("llamaguard.categories", ())) == verdict.categories
    assert a["llamaguard.threshold"] == 0.5 and a["llamaguard.review_threshold"] == 0.3
    assert a["gen_ai.usage.input_tokens"] == verdict.prompt_tokens > 0
    assert a["llamaguard.batch_size"] == 1 and a["llamaguard.latency_ms"] == verdict.latency_ms
    assert span.end_time - span.start_time == pytest.approx(verdict.latency_ms * 1e6, rel=0.01, abs=1e4)
    assert no_content(span, SECRET)


def test_a_batch_records_one_span_per_check_with_its_size(marked, spans):
    marked.classify_batch(["a [p=0.1]", "b [p=0.2]", "c [p=0.9] [cat=S1]"])
    assert [s.attributes["llamaguard.batch_size"] for s in guard_spans(spans)] == [3, 3, 3]


def test_a_guard_failure_is_an_error_span(test_model_dir, spans):
    # A model step slower than the deadline by far: a 1e-9 s deadline on the fast scripted step could still be met
    # when the worker thread ran the whole check before the caller's wait began (seen on a busy machine).
    slow = scripted_guard(test_model_dir, marker_category, cache_size=0, model_name="test/llama-guard")
    slow.backend.delay_s = 3.0
    try:
        verdict = slow.classify("x", policy=Policy(timeout_s=0.05))
    finally:
        slow.close()
    assert verdict.error is not None and not verdict.safe
    (span,) = [s for s in guard_spans(spans) if s.attributes.get("llamaguard.error") == verdict.error]
    assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "GuardTimeoutError"
    assert span.attributes["llamaguard.error"] == verdict.error


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_agent_checks_name_their_stage_and_join_the_callers_trace(marked, spans, provider, asynchronous):
    model = scripted_model(
        AIMessage("", tool_calls=[tool_call("lookup", {"q": f"{SECRET} [p=0.1]"}, "c1")]), AIMessage("ok [p=0.1]")
    )

    def lookup(q: str) -> str:
        """Look something up."""
        return "found [p=0.1]"

    agent = create_agent(model, tools=[lookup], middleware=[LlamaGuardMiddleware(marked)])
    tracer = provider[0].get_tracer("app")
    with tracer.start_as_current_span("agent run") as parent:
        value = {"messages": [HumanMessage(f"{SECRET} [p=0.1]")]}
        asyncio.run(agent.ainvoke(value)) if asynchronous else agent.invoke(value)
    checks = guard_spans(spans)
    assert [s.attributes["llamaguard.stage"] for s in checks] == [
        "input",
        "output",
        "tool_call",
        "tool_result",
        "output",
    ]
    assert {s.context.trace_id for s in checks} == {parent.get_span_context().trace_id}
    assert all(no_content(s, SECRET) for s in checks)


def test_content_is_recorded_only_when_asked(marked, spans):
    tracing.capture_content(True)
    with tracing.checking("input", [{"role": "user", "content": SECRET}]):
        marked.classify([{"role": "user", "content": SECRET}])
    (span,) = guard_spans(spans)
    assert SECRET in span.attributes["gen_ai.input.messages"] and span.attributes["llamaguard.stage"] == "input"


def test_a_served_check_joins_the_trace_in_its_callers_traceparent(marked, spans):
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    with tracing.attach_context(headers), tracing.checking("input"):
        marked.classify("hello [p=0.1]")
    (span,) = guard_spans(spans)
    assert format(span.context.trace_id, "032x") == trace_id and format(span.parent.span_id, "016x") == parent_id


def test_without_opentelemetry_recording_is_a_no_op(marked, spans, monkeypatch):
    monkeypatch.setattr(tracing, "trace", None)
    assert marked.classify("hello [p=0.1]").safe
    with tracing.attach_context({"traceparent": "garbage"}):
        pass
    assert guard_spans(spans) == []


class RecordingClient:
    """A LangSmith client stand-in for ``LangChainTracer``: keeps every run it is sent."""

    tracing_queue = None
    otel_exporter = None

    def __init__(self) -> None:
        self.updates: list[dict] = []

    def create_run(self, **run) -> None:
        pass

    def update_run(self, run_id=None, **run) -> None:
        self.updates.append(run)

    def flush(self) -> None:
        pass


def traced_metadata(client) -> list[dict]:
    return [e for run in client.updates for e in ((run.get("extra") or {}).get("metadata") or {}).get("llamaguard", [])]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_langchain_runs_carry_their_verdicts_in_metadata(marked, asynchronous):
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tracers.langchain import LangChainTracer

    from llamaguard_guardrails.langchain import guard_chain

    client = RecordingClient()
    tracer = LangChainTracer(client=client, project_name="test")
    chain = guard_chain(RunnableLambda(lambda x: "fine [p=0.2]"), marked, policy=Policy(review_threshold=0.1))
    value, config = f"{SECRET} [p=0.05]", {"callbacks": [tracer]}
    with pytest.raises(ReviewRequired):  # the output is in review and nobody reviews it: held back
        asyncio.run(chain.ainvoke(value, config)) if asynchronous else chain.invoke(value, config)
    tracer.wait_for_futures()
    entries = traced_metadata(client)
    assert [(e["stage"], e["outcome"]) for e in entries] == [("input", "allow"), ("output", "review")]
    assert entries[1]["review_threshold"] == 0.1 and entries[1]["unsafe_probability"] == pytest.approx(0.2)
    assert SECRET not in str(client.updates[-1].get("extra"))


def test_agent_node_runs_carry_the_middlewares_verdicts(marked):
    from langchain_core.tracers.langchain import LangChainTracer

    client = RecordingClient()
    tracer = LangChainTracer(client=client, project_name="test")
    agent = create_agent(scripted_model(AIMessage("ok [p=0.1]")), middleware=[LlamaGuardMiddleware(marked)])
    agent.invoke({"messages": [HumanMessage("hi [p=0.1]")]}, {"callbacks": [tracer]})
    tracer.wait_for_futures()
    assert [e["stage"] for e in traced_metadata(client)] == ["input", "output"]


def test_tokens_reused_from_the_kv_cache_are_on_the_span(guard, spans):
    """The real backend (test model): a second check reuses at least the policy prefix's KV."""
    first = guard.classify("tracing: how do I bake rye bread?")
    second = guard.classify("tracing: how do I bake spelt bread?")
    assert second.kv_reused_tokens > 0 and second.kv_reused_tokens < second.prompt_tokens
    span = guard_spans(spans)[-1]
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == second.kv_reused_tokens
    assert span.attributes["gen_ai.usage.input_tokens"] == second.prompt_tokens
    assert "kv_reused_tokens" not in second.model_dump() and first.prompt_tokens > 0  # not part of a verdict's record


def test_a_check_through_from_server_joins_the_callers_trace_on_the_server(marked, spans, provider):
    """The served guard's client sends ``traceparent``; the server's span is a child of the caller's span."""
    from llamaguard_guardrails import LlamaGuard
    from llamaguard_guardrails.serve.app import create_app
    from llamaguard_guardrails.serve.background import BackgroundServer

    tracer = provider[0].get_tracer("test")
    with BackgroundServer(create_app(marked, warm=False)) as server:
        remote = LlamaGuard.from_server(server.url)
        try:
            with tracer.start_as_current_span("agent step") as caller:
                assert remote.classify("hello [p=0.1]").safe
        finally:
            remote.close()
    (span,) = guard_spans(spans)
    assert span.context.trace_id == caller.get_span_context().trace_id
    assert span.parent.span_id == caller.get_span_context().span_id
