"""LangChain entry points: the LCEL runnable, ``guard_chain``, guarded tools, the middleware in a real
``create_agent``, the callback handlers and the decision model under ``AutoModeMiddleware``.

Models are langchain-core fake chat models (:class:`ScriptedChat`) that answer the case's last message and
stream its chunks; tools are real ``StructuredTool``s. Every model call and tool run is logged in the event log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableGenerator
from langchain_core.tools import StructuredTool
from pydantic import Field

from llamaguard_guardrails.langchain import (
    AsyncLlamaGuardCallbackHandler,
    LlamaGuardCallbackHandler,
    LlamaGuardDecisionModel,
    LlamaGuardMiddleware,
    LlamaGuardRunnable,
    blocked_verdict,
    guard_chain,
    guard_tool,
)

from .cases import Case
from .common import (
    NotApplicable,
    Result,
    Whole,
    aconsume,
    consume,
    contains,
    failure,
    guarded,
    lc_chunks,
    lc_messages,
    payloads,
    release,
    text_of,
)
from .conformance_guard.backend import EVENTS
from .entry_points import EntryPoint

BREAD = "How do I bake bread?"
FINE = "Fine."


# -- fakes --------------------------------------------------------------------------------------------------


class ScriptedChat(GenericFakeChatModel):
    """A fake chat model: answers ``answers`` in turn (the last one repeats), streams ``chunks`` when given
    (else its answer as one chunk), answers ``Fine.`` to the plain bread question (a batch's safe neighbour)."""

    messages: Iterator[Any] = Field(default_factory=lambda: iter(()))
    answers: list[AIMessage] = Field(default_factory=list)
    chunks: list[Any] | None = None
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChat:
        return self

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        EVENTS.add("model-called", " ".join(text_of(m) for m in messages))
        if messages and isinstance(messages[-1], HumanMessage) and messages[-1].content == BREAD:
            return AIMessage(FINE)
        self.calls.append(list(messages))
        answers = self.answers or [AIMessage(FINE)]
        return answers[min(len(self.calls) - 1, len(answers) - 1)]

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Iterator[ChatGenerationChunk]:
        answer = self._answer(messages)
        chunks = self.chunks if self.chunks is not None and len(self.calls) == 1 else [_as_chunk(answer)]
        for chunk in chunks:
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=ChatGenerationChunk(message=chunk))
            yield ChatGenerationChunk(message=chunk)


def _as_chunk(message: AIMessage) -> AIMessageChunk:
    fragments = [{"name": c["name"], "args": _json(c["args"]), "id": c["id"], "index": n} for n, c in enumerate(message.tool_calls)]
    return AIMessageChunk(content=message.content, additional_kwargs=message.additional_kwargs, tool_call_chunks=fragments, name=message.name)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def raw_stream(chunks: list[Any]) -> RunnableGenerator:
    """A 'model' streaming exactly ``chunks`` (dicts, strings ...), whatever its input."""

    def stream(_: Iterator[Any]) -> Iterator[Any]:
        for chunk in chunks:
            EVENTS.add("model-called")
            yield chunk

    async def astream(inputs: Any) -> Any:
        async for _ in inputs:
            pass
        for chunk in chunks:
            await asyncio.sleep(0)
            yield chunk

    return RunnableGenerator(stream, astream)


def make_tool(name: str, returns: Any) -> StructuredTool:
    def run(**kwargs: Any) -> Any:
        EVENTS.add("tool-ran", f"{name} {_json(kwargs)}")
        return returns

    schema = {"type": "object", "properties": {}, "additionalProperties": True}
    return StructuredTool.from_function(func=run, name=name, description="A tool.", args_schema=schema)


# -- plans: what goes in, what the model says, what tools return --------------------------------------------


class Plan:
    """The case as a LangChain run: ``inputs`` (messages), the model's ``answers`` (and streamed ``chunks``),
    tools by name and what they return."""

    def __init__(self, case: Case, word: str, *, tools: bool = True) -> None:
        self.with_tools = tools
        self.tool_returns: Any = "Sunny."
        self.chunks: list[Any] | None = None
        self.kind = "tool_returns"  # or: "answer" (the model says the last message), "tool_result", "input"
        if case.tool_returns is not None:
            self.inputs: list[Any] = [HumanMessage("Look it up.")]
            self.answers = [AIMessage("", tool_calls=[_call("search", {"q": "recipes"})]), AIMessage("Done.")]
            self.tool_returns = case.tool_returns(word)
        elif case.conversation is None and case.lc_messages is None:
            if case.lc_chunks is None:
                raise NotApplicable("the case has no LangChain form")
            self.kind, self.inputs, self.answers = "answer", [HumanMessage("Tell me a story.")], [AIMessage("")]
        else:
            self._from_messages(lc_messages(case, word))
        if case.deltas is not None or case.lc_chunks is not None:
            self.chunks = lc_chunks(case, word)

    def _from_messages(self, messages: list[Any]) -> None:
        last = messages[-1]
        if isinstance(last, AIMessage):
            self.kind, self.inputs, self.answers = "answer", messages[:-1], [last, AIMessage("Done.")]
        elif self.with_tools and isinstance(last, ToolMessage) and len(messages) >= 2 and isinstance(messages[-2], AIMessage):
            self.kind, self.inputs, self.answers = "tool_result", messages[:-2], [messages[-2], AIMessage("Done.")]
            self.tool_returns = last.content
        else:
            self.kind, self.inputs, self.answers = "input", messages, [AIMessage(FINE)]

    def tool_names(self) -> list[str]:
        names = {c["name"] for a in self.answers for c in a.tool_calls} | {"search"}
        return sorted(names)

    def tools(self) -> list[StructuredTool]:
        return [make_tool(name, self.tool_returns) for name in self.tool_names()]

    def model(self) -> ScriptedChat:
        return ScriptedChat(answers=self.answers, chunks=self.chunks)


def _call(name: str, args: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


class LangChainEntry(EntryPoint):
    group = "langchain"
    runs_tools = True  # a tool result at the end of a conversation is what a tool returns (else: input)

    def forms(self, case: Case, word: str) -> Any:
        if case.responses_output or case.responses_events:
            raise NotApplicable("a Responses API shape")
        return Plan(case, word, tools=self.runs_tools)


# -- the LCEL runnable --------------------------------------------------------------------------------------


class RunnableInput(LangChainEntry):
    id = "LlamaGuardRunnable (input)"

    def forms(self, case: Case, word: str) -> Any:
        if case.tool_returns is not None:
            raise NotApplicable("checks a chain's input, not tool returns")
        return lc_messages(case, word)

    def run(self, case: Case, word: str, env: Any) -> Result:
        runnable = LlamaGuardRunnable(env.guard(case.guard))
        return guarded(lambda: Result("passed", text_of(runnable.invoke(self.forms(case, word)))[:100]))


class RunnableOutput(LangChainEntry):
    """``model | LlamaGuardRunnable(guard, stage="output")``, invoked."""

    id = "LlamaGuardRunnable (output)"

    def forms(self, case: Case, word: str) -> Any:
        plan = super().forms(case, word)
        if plan.kind != "answer":
            raise NotApplicable("checks a model's answer only (no context, no tool results)")
        return plan

    def chain(self, case: Case, word: str, env: Any) -> tuple[Any, Plan]:
        plan = self.forms(case, word)
        model = raw_stream(plan.chunks) if case.lc_chunks else plan.model()
        return model | LlamaGuardRunnable(env.guard(case.guard), stage="output"), plan

    def run(self, case: Case, word: str, env: Any) -> Result:
        chain, plan = self.chain(case, word, env)
        return guarded(lambda: Result("passed", text_of(chain.invoke(plan.inputs))[:100]))


class RunnableOutputStream(RunnableOutput):
    id = "LlamaGuardRunnable (output) .stream"
    streams = True

    def run(self, case: Case, word: str, env: Any) -> Result:
        chain, plan = self.chain(case, word, env)
        return guarded(lambda: consume(chain.stream(plan.inputs), text_of, payloads(case, word)))


# -- guard_chain --------------------------------------------------------------------------------------------


class GuardChain(LangChainEntry):
    """``guard_chain(model, guard)``: input checked, the model's answer checked in context."""

    id = "guard_chain .invoke"
    downstream = True
    runs_tools = False
    options: ClassVar[dict[str, Any]] = {}

    def forms(self, case: Case, word: str) -> Any:
        plan = super().forms(case, word)
        if case.tool_returns is not None:
            raise NotApplicable("no tool runs inside a guarded chain")
        if case.lc_chunks is not None and not self.streams:
            raise NotApplicable("a streamed form only")
        return plan

    def chain(self, case: Case, word: str, env: Any) -> tuple[Any, Plan]:
        plan = self.forms(case, word)
        model = raw_stream(plan.chunks) if case.lc_chunks else plan.model()
        return guard_chain(model, env.guard(case.guard), **self.options), plan

    def run(self, case: Case, word: str, env: Any) -> Result:
        chain, plan = self.chain(case, word, env)
        return guarded(lambda: Result("passed", text_of(chain.invoke(plan.inputs))[:100]))


class GuardChainBatch(GuardChain):
    """``.batch([safe, case], return_exceptions=True)``: the case's item."""

    id = "guard_chain .batch"

    def run(self, case: Case, word: str, env: Any) -> Result:
        chain, plan = self.chain(case, word, env)

        def go() -> Result:
            safe, item = chain.batch([[HumanMessage(BREAD)], plan.inputs], return_exceptions=True)
            if isinstance(safe, BaseException) and case.prop != "c":  # a model fault fails its whole batch
                return Result(f"crashed: the safe neighbour failed ({safe!r})")
            if isinstance(item, BaseException):  # a block is a BaseException
                return failure(item)
            return Result("passed", text_of(item)[:100])

        return guarded(go)


class GuardChainStream(GuardChain):
    id = "guard_chain .stream (buffered)"
    streams = True
    options: ClassVar[dict[str, Any]] = {"stream_mode": "buffered"}

    def run(self, case: Case, word: str, env: Any) -> Result:
        chain, plan = self.chain(case, word, env)
        return guarded(lambda: consume(chain.stream(plan.inputs), text_of, payloads(case, word)))


class GuardChainStreamWindowed(GuardChainStream):
    id = "guard_chain .stream (windowed)"
    options: ClassVar[dict[str, Any]] = {"stream_mode": "windowed", "window_size": 64, "window_overlap": 16}


class GuardChainAStream(GuardChainStream):
    id = "guard_chain .astream (buffered)"

    def run(self, case: Case, word: str, env: Any) -> Result:
        chain, plan = self.chain(case, word, env)
        return guarded(lambda: asyncio.run(aconsume(chain.astream(plan.inputs), text_of, payloads(case, word))))


class GuardChainAStreamWindowed(GuardChainAStream):
    id = "guard_chain .astream (windowed)"
    options: ClassVar[dict[str, Any]] = {"stream_mode": "windowed", "window_size": 64, "window_overlap": 16}


class GuardChainFallbacks(GuardChain):
    """``guard_chain(model, guard).with_fallbacks([other])``: a block is final, so the
    other model never runs; it answering is a pass."""

    id = "guard_chain .with_fallbacks"

    def chain(self, case: Case, word: str, env: Any) -> tuple[Any, Plan]:
        chain, plan = super().chain(case, word, env)
        self.other = ScriptedChat(answers=[AIMessage("Answered by the fallback model.")])
        return chain.with_fallbacks([self.other]), plan

    def run(self, case: Case, word: str, env: Any) -> Result:
        chain, plan = self.chain(case, word, env)

        def go() -> Result:
            value = chain.invoke(plan.inputs)
            if self.other.calls:
                return Result("passed", "reached the fallback model")
            return Result("passed", text_of(value)[:100])

        return guarded(go)


class GuardChainFallbacksStream(GuardChainFallbacks):
    id = "guard_chain .with_fallbacks .stream"
    streams = True

    def run(self, case: Case, word: str, env: Any) -> Result:
        chain, plan = self.chain(case, word, env)

        def go() -> Result:
            result = consume(chain.stream(plan.inputs), text_of, payloads(case, word))
            return Result("passed", "reached the fallback model") if self.other.calls else result

        return guarded(go)


# -- guarded tools ------------------------------------------------------------------------------------------


class GuardedTools(LangChainEntry):
    """``guard_tools([...], guard)``: each proposed call through its tool, invoked with a ``ToolCall`` as agents
    do (and with plain arguments, for tool returns). Blocked: an error ``ToolMessage`` carrying the verdict."""

    id = "guard_tool(s)"
    downstream = True

    def forms(self, case: Case, word: str) -> Any:
        plan = super().forms(case, word)
        answer = plan.answers[0]
        if not answer.tool_calls or plan.kind == "input":
            raise NotApplicable("a guarded tool sees only its own calls and results")
        if answer.content and case.tool_returns is None:
            raise NotApplicable("a guarded tool sees only its own calls and results, not the answer's text")
        if case.lc_chunks is not None or case.stream_only:
            raise NotApplicable("not a streaming entry point")
        return plan

    def run(self, case: Case, word: str, env: Any) -> Result:
        plan = self.forms(case, word)
        tools = {t.name: t for t in _guarded(plan.tools(), env.guard(case.guard))}

        def go() -> Result:
            outcomes = []
            marks = payloads(case, word)
            returns_payload = contains([text_of(plan.tool_returns)], marks)
            for call in plan.answers[0].tool_calls:
                if case.prop != "d" and not (returns_payload or contains([call["name"], _json(call["args"])], marks)):
                    continue  # a safe neighbour call: running it is right
                outcomes.append(_tool_outcome(tools[call["name"]].invoke({**call, "type": "tool_call"}), case, word))
                if case.tool_returns is not None:
                    outcomes.append(_tool_outcome(tools[call["name"]].invoke(call["args"]), case, word))
            return _worst(outcomes) if outcomes else Result("crashed: no call carries the payload")

        return guarded(go)


def _guarded(tools: list[StructuredTool], guard: Any) -> list[Any]:
    from llamaguard_guardrails.langchain import guard_tools

    return guard_tools(tools, guard)


def _tool_outcome(result: Any, case: Case, word: str) -> Result:
    if isinstance(result, ToolMessage) and result.status == "error" and blocked_verdict(result) is not None:
        return Result("blocked", str(result.content)[:100])
    if isinstance(result, str) and result.startswith("Blocked by Llama Guard"):
        return Result("blocked", result[:100])
    return Result("passed", text_of(result)[:100])


def _worst(outcomes: list[Result]) -> Result:
    for kind in ("passed", "leaked", "crashed"):
        for result in outcomes:
            if result.outcome.startswith(kind):
                return result
    return outcomes[0]


# -- agents ----------------------------------------------------------------------------------------------------


def agent_outcome(case: Case, word: str, model: ScriptedChat, inputs: list[Any], final: list[Any], released: list[str]) -> Result:
    """Passed: the payload reached the model (from outside it), a tool, or the messages the run produced,
    unblocked; blocked: a refusal or blocked tool message stands in for it."""
    marks = payloads(case, word)
    produced = final[len(inputs):]
    shown = [text_of(m) for call in model.calls for m in call if not isinstance(m, AIMessage) and not _is_block(m)]
    tools = [text for _, text in EVENTS.of("tool-ran")]
    kept = [text_of(m) for m in produced if not _is_block(m)]
    if contains(released, marks) and any(_is_block(m) for m in produced):
        return Result("leaked", f"streamed {''.join(released)[:100]!r}")
    for where, texts in (("the model", shown), ("a tool", tools), ("the output", kept), ("the stream", released)):
        if contains(texts, marks):
            return Result("passed", f"reached {where}")
    if any(_is_block(m) for m in produced):
        return Result("blocked", "; ".join(str(m.content)[:60] for m in produced if _is_block(m)))
    return Result("passed", "nothing blocked (and the payload went nowhere visible)")


def _is_block(message: Any) -> bool:
    if blocked_verdict(message) is not None:
        return True
    return isinstance(message, ToolMessage) and message.status == "error" and "blocked" in str(message.content)


class Middleware(LangChainEntry):
    """``create_agent(model, tools, middleware=[LlamaGuardMiddleware(guard)])``, ``.invoke``."""

    id = "LlamaGuardMiddleware .invoke"
    downstream = True
    decides = False  # the decision model: judges proposed calls only

    def forms(self, case: Case, word: str) -> Any:
        plan = super().forms(case, word)
        if case.lc_chunks is not None:
            raise NotApplicable("agent models stream message chunks only")
        if case.id == "b.opaque_message":
            raise NotApplicable("LangGraph's message reducer refuses it before any hook runs")
        if self.decides and (plan.kind != "answer" or not plan.answers[0].tool_calls):
            raise NotApplicable("judges proposed tool calls only")
        if self.decides and plan.answers[0].content:
            raise NotApplicable("judges the proposed call; the answer's text is the output check's job")
        if not plan.inputs:
            raise NotApplicable("an agent run starts from a user turn")
        return plan

    def agent(self, case: Case, word: str, env: Any) -> tuple[Any, Plan, ScriptedChat]:
        from langchain.agents import create_agent

        plan = self.forms(case, word)
        model = plan.model()
        agent = create_agent(model, tools=plan.tools(), middleware=self.middleware(env.guard(case.guard)))
        return agent, plan, model

    def middleware(self, guard: Any) -> list[Any]:
        return [LlamaGuardMiddleware(guard)]

    def run(self, case: Case, word: str, env: Any) -> Result:
        agent, plan, model = self.agent(case, word, env)

        def go() -> Result:
            final = agent.invoke({"messages": plan.inputs})["messages"]
            return agent_outcome(case, word, model, plan.inputs, final, [])

        return guarded(go)


class MiddlewareAsync(Middleware):
    id = "LlamaGuardMiddleware .ainvoke"

    def run(self, case: Case, word: str, env: Any) -> Result:
        agent, plan, model = self.agent(case, word, env)

        def go() -> Result:
            final = asyncio.run(agent.ainvoke({"messages": plan.inputs}))["messages"]
            return agent_outcome(case, word, model, plan.inputs, final, [])

        return guarded(go)


class MiddlewareStream(Middleware):
    """``agent.stream(..., stream_mode=["messages", "values"])``: what a chat UI shows, token by token."""

    id = "LlamaGuardMiddleware .stream(messages)"
    streams = True

    def run(self, case: Case, word: str, env: Any) -> Result:
        agent, plan, model = self.agent(case, word, env)

        def go() -> Result:
            released: list[str] = []
            final: list[Any] = []
            for mode, item in agent.stream({"messages": plan.inputs}, stream_mode=["messages", "values"]):
                if mode == "values":
                    final = item["messages"]
                    continue
                message = item[0]
                if _is_block(message):
                    continue  # the guard's own refusal, not released content
                text = text_of(message)
                release(text if isinstance(message, AIMessageChunk) else Whole(text))
                released.append(text)
            result = agent_outcome(case, word, model, plan.inputs, final, released)
            result.released = released
            return result

        return guarded(go)


class MiddlewareThread(Middleware):
    """A checkpointed thread: the case as one turn, then a benign turn. Blocked content
    must leave the thread's state (a placeholder stands in) and reach no model on the next turn, and the next
    turn must be answered, not refused because of it."""

    id = "LlamaGuardMiddleware thread (next turn)"

    def agent(self, case: Case, word: str, env: Any) -> tuple[Any, Plan, ScriptedChat]:
        from langchain.agents import create_agent
        from langgraph.checkpoint.memory import InMemorySaver

        plan = self.forms(case, word)
        model = plan.model()
        middleware = self.middleware(env.guard(case.guard))
        agent = create_agent(model, tools=plan.tools(), middleware=middleware, checkpointer=InMemorySaver())
        return agent, plan, model

    def run(self, case: Case, word: str, env: Any) -> Result:
        agent, plan, model = self.agent(case, word, env)
        config = {"configurable": {"thread_id": "conformance"}}
        marks = payloads(case, word)

        def go() -> Result:
            final = agent.invoke({"messages": plan.inputs}, config)["messages"]
            result = agent_outcome(case, word, model, plan.inputs, final, [])
            if result.outcome != "blocked":
                return result
            kept = [text_of(m) for m in agent.get_state(config).values["messages"] if not _is_block(m)]
            if contains(kept, marks):
                return Result("passed", "kept in the thread's state")
            env.release_hangs()  # a hung check of the first turn must not time out the next one
            first_call = max((n for n, _, _ in EVENTS.events), default=-1) + 1
            after = agent.invoke({"messages": [HumanMessage(BREAD)]}, config)["messages"]
            later = [text for n, text in EVENTS.of("model-called") if n >= first_call]
            if contains(later, marks):
                return Result("passed", "reached the model on the next turn")
            if not later or _is_block(after[-1]):
                return Result("crashed: the next benign turn was refused", str(after[-1].content)[:100])
            return result

        return guarded(go)


class DecisionModel(Middleware):
    """``AutoModeMiddleware(tools=..., classifier=LlamaGuardDecisionModel(guard))`` in ``create_agent``."""

    id = "LlamaGuardDecisionModel (AutoMode)"
    streams = False
    decides = True
    downstream_kinds = ("tool-ran",)  # the model proposes first; the decision comes before the tool

    def middleware(self, guard: Any) -> list[Any]:
        from langchain.agents.middleware import AutoModeMiddleware

        return [AutoModeMiddleware(tools=self._names, classifier=LlamaGuardDecisionModel(guard=guard))]

    def agent(self, case: Case, word: str, env: Any) -> tuple[Any, Plan, ScriptedChat]:
        self._names = self.forms(case, word).tool_names()
        return super().agent(case, word, env)

    def run(self, case: Case, word: str, env: Any) -> Result:
        """passed: a tool ran with the payload; blocked: AutoMode's error tool message stands in for it."""
        agent, plan, _ = self.agent(case, word, env)

        def go() -> Result:
            final = agent.invoke({"messages": plan.inputs})["messages"]
            if contains([text for _, text in EVENTS.of("tool-ran")], payloads(case, word)):
                return Result("passed", "a tool ran with it")
            blocks = [m for m in final[len(plan.inputs):] if _is_block(m)]
            if blocks:
                return Result("blocked", str(blocks[0].content)[:100])
            return Result("passed", "nothing blocked")

        return guarded(go)


# -- callbacks ---------------------------------------------------------------------------------------------------


class Callbacks(LangChainEntry):
    """``model.invoke(messages, config={"callbacks": [LlamaGuardCallbackHandler(guard)]})``."""

    id = "LlamaGuardCallbackHandler"
    downstream = True
    runs_tools = False
    handler = LlamaGuardCallbackHandler

    def na(self, case: Case) -> str | None:
        if case.stream_only:
            return "documented limit: callbacks cannot take back streamed tokens"
        if case.id == "b.opaque_message":
            return "the chat model refuses it before any callback runs"
        return super().na(case)

    def forms(self, case: Case, word: str) -> Any:
        plan = super().forms(case, word)
        if case.tool_returns is not None:
            raise NotApplicable("no tool runs in a model call")
        if not plan.inputs:
            raise NotApplicable("a model call needs input messages")
        return plan

    def run(self, case: Case, word: str, env: Any) -> Result:
        plan = self.forms(case, word)
        model = plan.model()
        config = {"callbacks": [self.handler(env.guard(case.guard))]}
        return guarded(lambda: Result("passed", text_of(model.invoke(plan.inputs, config=config))[:100]))


class CallbacksAsync(Callbacks):
    id = "AsyncLlamaGuardCallbackHandler .ainvoke"
    handler = AsyncLlamaGuardCallbackHandler

    def run(self, case: Case, word: str, env: Any) -> Result:
        plan = self.forms(case, word)
        model = plan.model()
        config = {"callbacks": [self.handler(env.guard(case.guard))]}
        return guarded(lambda: Result("passed", text_of(asyncio.run(model.ainvoke(plan.inputs, config=config)))[:100]))


LANGCHAIN: list[EntryPoint] = [
    RunnableInput(),
    RunnableOutput(),
    RunnableOutputStream(),
    GuardChain(),
    GuardChainBatch(),
    GuardChainStream(),
    GuardChainStreamWindowed(),
    GuardChainAStream(),
    GuardChainAStreamWindowed(),
    GuardChainFallbacks(),
    GuardChainFallbacksStream(),
    GuardedTools(),
    Middleware(),
    MiddlewareAsync(),
    MiddlewareStream(),
    MiddlewareThread(),
    Callbacks(),
    CallbacksAsync(),
    DecisionModel(),
]
__all__ = ["LANGCHAIN", "guard_tool"]
