"""Llama Stack entry points: the safety provider on a real ``llama stack run`` server (``run_shield``,
moderations), and ``guard_client`` (chat completions and responses, streamed and not) against the fake
upstream LLM, which answers the case's last message exactly as the case wrote it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from typing import Any

import pytest

from llamaguard_guardrails import UnsafeContentError

from .cases import Case
from .common import (
    NotApplicable,
    Result,
    Whole,
    aconsume,
    consume,
    conversation,
    failure,
    guarded,
    json_safe,
    payloads,
    split,
)
from .entry_points import EntryPoint
from .servers import Reply

SHIELDS = {"default": "conf", "timeout": "conf-timeout", "open": "conf-open", "threshold": "conf-threshold"}
BREAD = "How do I bake bread?"


def http_failure(exc: BaseException) -> Result:
    """A server's answer to a request it refused: 4xx is a clear (typed) refusal, anything else is not."""
    from llama_stack_client import APIStatusError

    if isinstance(exc, APIStatusError):
        kind = "rejected" if 400 <= exc.status_code < 500 else f"crashed: HTTP {exc.status_code}"
        return Result(kind, str(exc)[:200])
    return failure(exc)


def server_call(run: Any) -> Result:
    try:
        return run()
    except (Exception, UnsafeContentError) as exc:  # noqa: BLE001 - every failure is an outcome
        return http_failure(exc)


def _missing() -> str | None:
    """Why the Llama Stack cells cannot run here (the extra is not installed), or None."""
    for module in ("llama_stack", "llama_stack_client"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (the llama-stack extra)"
    return None


class StackEntry(EntryPoint):
    group = "llama-stack"
    marks = (pytest.mark.llama_stack,)

    def na(self, case: Case) -> str | None:
        return _missing() or super().na(case)

    def forms(self, case: Case, word: str) -> Any:
        return json_safe(conversation(case, word))

    def client(self, env: Any) -> Any:
        from llama_stack_client import LlamaStackClient

        return LlamaStackClient(base_url=env.stack.url, max_retries=0, timeout=60)

    @staticmethod
    def loud(env: Any, before: int) -> bool:
        """Whether the server logged the fail-open pass at ERROR since ``before`` log lines."""
        lines = env.stack.log_text().splitlines()[before:]
        return any('"level": "error"' in line and "fail_mode='open'" in line for line in lines)


class RunShield(StackEntry):
    """``client.safety.run_shield(shield_id=..., messages=...)`` on the server: ERROR violation blocks."""

    id = "llama stack run_shield"

    def run(self, case: Case, word: str, env: Any) -> Result:
        messages = self.forms(case, word)
        client = self.client(env)
        before = len(env.stack.log_text().splitlines())

        def go() -> Result:
            violation = client.safety.run_shield(shield_id=SHIELDS[case.guard], messages=messages).violation
            if violation is None:
                return Result("passed", "no violation")
            if violation.violation_level == "error":
                return Result("blocked", json.dumps(violation.metadata.get("violation_type")) + f" {violation.metadata.get('error')}")
            return Result("passed", f"{violation.violation_level}: {violation.metadata.get('error')}", loud=self.loud(env, before))

        return server_call(go)


class Moderations(StackEntry):
    """``client.moderations.create(input=[safe, text], model=shield)``: the text's result flagged blocks."""

    id = "llama stack moderations"

    def forms(self, case: Case, word: str) -> Any:
        if case.text is None:
            raise NotApplicable("moderations take plain strings")
        return case.text(word)

    def run(self, case: Case, word: str, env: Any) -> Result:
        text = self.forms(case, word)
        client = self.client(env)
        before = len(env.stack.log_text().splitlines())

        def go() -> Result:
            results = client.moderations.create(input=[BREAD, text], model=SHIELDS[case.guard]).results
            result = results[1]
            if result.flagged:
                return Result("blocked", f"{[k for k, v in (result.categories or {}).items() if v]} {result.metadata.get('error')}")
            error = result.metadata.get("error")
            return Result("passed", f"not flagged {error or ''}", loud=(self.loud(env, before) if error else False))

        return server_call(go)


# -- guard_client -----------------------------------------------------------------------------------------


class GuardClient(EntryPoint):
    """``guard_client(LlamaStackClient(base_url=upstream), guard)``: the request checked before the call,
    the answer before it is returned. The upstream answers the case's last message."""

    group = "llama-stack"
    downstream = True

    def na(self, case: Case) -> str | None:
        if importlib.util.find_spec("llama_stack_client") is None:
            return "llama_stack_client is not installed (the llama-stack extra)"
        return super().na(case)

    def forms(self, case: Case, word: str) -> Any:
        if case.lc_chunks is not None or case.lc_messages is not None or case.tool_returns is not None:
            raise NotApplicable("a LangChain-only form")
        if case.responses_output is not None or case.responses_events is not None:
            raise NotApplicable("a Responses API shape")
        request, answer = split(json_safe(conversation(case, word)))
        return request, answer

    def client(self, env: Any, case: Case) -> Any:
        from llama_stack_client import LlamaStackClient

        from llamaguard_guardrails.client import guard_client

        return guard_client(LlamaStackClient(base_url=env.upstream.url, max_retries=0), env.guard(case.guard))

    def async_client(self, env: Any, case: Case) -> Any:
        from llama_stack_client import AsyncLlamaStackClient

        from llamaguard_guardrails.client import guard_client

        return guard_client(AsyncLlamaStackClient(base_url=env.upstream.url, max_retries=0), env.guard(case.guard))


class GuardClientChat(GuardClient):
    id = "guard_client chat"

    def reply(self, case: Case, word: str, answer: Any) -> Reply:
        message = answer or {"role": "assistant", "content": "Fine."}
        return Reply(message=message)

    def run(self, case: Case, word: str, env: Any) -> Result:
        request, answer = self.forms(case, word)
        env.upstream.script(self.reply(case, word, answer))
        client = self.client(env, case)
        return guarded(lambda: Result("passed", _chat_text(client.chat.completions.create(model="m", messages=request))[:100]))


class GuardClientChatStream(GuardClientChat):
    id = "guard_client chat stream"
    streams = True

    def reply(self, case: Case, word: str, answer: Any) -> Reply:
        if case.deltas is not None:
            return Reply(deltas=case.deltas(word))
        return super().reply(case, word, answer)

    def run(self, case: Case, word: str, env: Any) -> Result:
        request, answer = self.forms(case, word)
        env.upstream.script(self.reply(case, word, answer))
        client = self.client(env, case)
        stream = lambda: client.chat.completions.create(model="m", messages=request, stream=True)  # noqa: E731
        return guarded(lambda: consume(stream(), _chunk_text, payloads(case, word)))


class AsyncGuardClientChatStream(GuardClientChatStream):
    id = "guard_client chat stream (async)"

    def run(self, case: Case, word: str, env: Any) -> Result:
        request, answer = self.forms(case, word)
        env.upstream.script(self.reply(case, word, answer))

        async def go() -> Result:
            client = self.async_client(env, case)
            try:
                stream = await client.chat.completions.create(model="m", messages=request, stream=True)
            except (Exception, UnsafeContentError) as exc:  # noqa: BLE001
                return failure(exc)
            return await aconsume(stream, _chunk_text, payloads(case, word))

        return guarded(lambda: asyncio.run(go()))


class GuardClientResponses(GuardClient):
    id = "guard_client responses"

    def forms(self, case: Case, word: str) -> Any:
        if case.responses_output is not None:
            return [{"type": "message", "role": "user", "content": "Go on."}], case.responses_output(word)
        if case.responses_events is not None:
            raise NotApplicable("a streamed Responses form only")
        request, answer = super().forms(case, word)
        return input_items(request), output_items(answer) if answer else None

    def reply(self, case: Case, word: str, output: Any) -> Reply:
        return Reply(output=output or [_message_item("Fine.")])

    def run(self, case: Case, word: str, env: Any) -> Result:
        items, output = self.forms(case, word)
        env.upstream.script(self.reply(case, word, output))
        client = self.client(env, case)
        return guarded(lambda: Result("passed", _response_text(client.responses.create(model="m", input=items))[:100]))


class GuardClientResponsesStream(GuardClientResponses):
    id = "guard_client responses stream"
    streams = True

    def forms(self, case: Case, word: str) -> Any:
        if case.responses_events is not None:
            return [{"type": "message", "role": "user", "content": "Go on."}], None
        items, output = super().forms(case, word)
        if case.deltas is not None:
            output = ("deltas", case.deltas(word))
        return items, output

    def reply(self, case: Case, word: str, output: Any) -> Reply:
        if case.responses_events is not None:
            return Reply(events=case.responses_events(word))
        if isinstance(output, tuple):
            return Reply(events=delta_events(output[1]))
        return Reply(events=item_events(output or [_message_item("Fine.")]))

    def run(self, case: Case, word: str, env: Any) -> Result:
        items, output = self.forms(case, word)
        env.upstream.script(self.reply(case, word, output))
        client = self.client(env, case)
        stream = lambda: client.responses.create(model="m", input=items, stream=True)  # noqa: E731
        return guarded(lambda: consume(stream(), _event_text, payloads(case, word)))


class AsyncGuardClientResponsesStream(GuardClientResponsesStream):
    id = "guard_client responses stream (async)"

    def run(self, case: Case, word: str, env: Any) -> Result:
        items, output = self.forms(case, word)
        env.upstream.script(self.reply(case, word, output))

        async def go() -> Result:
            client = self.async_client(env, case)
            try:
                stream = await client.responses.create(model="m", input=items, stream=True)
            except (Exception, UnsafeContentError) as exc:  # noqa: BLE001
                return failure(exc)
            return await aconsume(stream, _event_text, payloads(case, word))

        return guarded(lambda: asyncio.run(go()))


# -- chat messages as Responses items ---------------------------------------------------------------------


def input_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages as ``responses.create`` input items."""
    items: list[dict[str, Any]] = []
    for m in messages:
        _no_chat_only_fields(m)
        role = m.get("role")
        if role == "assistant":
            items.extend(output_items(m))
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m.get("content")})
        else:
            item = {"type": "message", "role": role}
            if "content" in m:
                item["content"] = _input_parts(m["content"])
            items.append(item)
    return items


def output_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An assistant chat message as Responses output items (reasoning, message, function calls)."""
    _no_chat_only_fields(message)
    items: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        items.append({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": message["reasoning_content"]}]})
    parts = []
    if message.get("content"):
        parts.append({"type": "output_text", "text": message["content"], "annotations": []})
    if message.get("refusal"):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        items.append({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": parts})
    for n, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function")
        if not isinstance(function, dict):
            raise NotApplicable("a chat-only tool-call shape")
        item = {"type": "function_call", "id": f"fc_{n}", "call_id": call["id"], "arguments": function.get("arguments", ""), "status": "completed"}
        if "name" in function:
            item["name"] = function["name"]
        items.append(item)
    return items


def _no_chat_only_fields(message: dict[str, Any]) -> None:
    for key in ("name", "audio"):
        if key in message:
            raise NotApplicable(f"Responses items have no {key!r} field")


def _input_parts(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    return [{**p, "type": "input_text"} if p.get("type") == "text" else p for p in content]


def _message_item(text: str) -> dict[str, Any]:
    return {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def _response(output: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 0, "model": "m", "status": status, "output": output}


def item_events(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Responses stream of ``output``: each item added, its text in deltas, done; then completed."""
    events: list[dict[str, Any]] = [{"type": "response.created", "response": _response([], "in_progress")}]
    for n, item in enumerate(output):
        events.append({"type": "response.output_item.added", "output_index": n, "item": {**item, "status": "in_progress"}})
        for part in item.get("content") or []:
            kind, key = ("response.refusal.delta", "refusal") if part.get("type") == "refusal" else ("response.output_text.delta", "text")
            text = part.get(key) or ""
            for i in range(0, len(text), 8):
                events.append({"type": kind, "item_id": item.get("id"), "output_index": n, "content_index": 0, "delta": text[i : i + 8]})
        events.append({"type": "response.output_item.done", "output_index": n, "item": item})
    events.append({"type": "response.completed", "response": _response(output)})
    return [{**e, "sequence_number": s} for s, e in enumerate(events)]


def delta_events(deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-style deltas as a Responses stream: text, refusal, reasoning and argument deltas, then the items."""
    text = "".join(d.get("content") or "" for d in deltas)
    message = {"role": "assistant", "content": text or None}
    refusal = "".join(d.get("refusal") or "" for d in deltas)
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    if refusal:
        message["refusal"] = refusal
    if reasoning:
        message["reasoning_content"] = reasoning
    calls: list[dict[str, Any]] = []
    for d in deltas:
        for fragment in d.get("tool_calls") or []:
            if fragment.get("id"):
                calls.append({"id": fragment["id"], "type": "function", "function": {"name": fragment["function"]["name"], "arguments": ""}})
            calls[-1]["function"]["arguments"] += fragment.get("function", {}).get("arguments") or ""
    if calls:
        message["tool_calls"] = calls
    output = output_items(message)
    events: list[dict[str, Any]] = [{"type": "response.created", "response": _response([], "in_progress")}]
    for d in deltas:
        for key, kind in (("content", "response.output_text.delta"), ("refusal", "response.refusal.delta"), ("reasoning_content", "response.reasoning_text.delta")):
            if d.get(key):
                events.append({"type": kind, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d[key]})
        for fragment in d.get("tool_calls") or []:
            piece = fragment.get("function", {}).get("arguments")
            if piece:
                events.append({"type": "response.function_call_arguments.delta", "item_id": "fc_0", "output_index": 0, "delta": piece})
    events += [{"type": "response.output_item.done", "output_index": n, "item": item} for n, item in enumerate(output)]
    events.append({"type": "response.completed", "response": _response(output)})
    return [{**e, "sequence_number": s} for s, e in enumerate(events)]


# -- what a consumer reads ---------------------------------------------------------------------------------


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else value


def _chat_text(completion: Any) -> str:
    return json.dumps(_dump(completion).get("choices"), default=str)


def _chunk_text(chunk: Any) -> str:
    """The text a chunk hands its reader: content, refusal, reasoning and tool-call argument deltas."""
    out = []
    for choice in _dump(chunk).get("choices") or []:
        delta = choice.get("delta") or {}
        out += [delta.get(k) or "" for k in ("content", "refusal", "reasoning_content")]
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or call.get("custom") or {}
            out += [function.get("name") or "", function.get("arguments") or function.get("input") or ""]
    return "".join(out)


def _response_text(response: Any) -> str:
    return json.dumps(_dump(response).get("output"), default=str)


def _event_text(event: Any) -> str:
    """A delta's text (a piece of the answer), or a finished item's readable text (a whole)."""
    data = _dump(event)
    if isinstance(data.get("delta"), str):
        return data["delta"]
    if data.get("type") == "response.output_item.done":
        return Whole(_item_text(data.get("item") or {}))
    return ""


def _item_text(item: dict[str, Any]) -> str:
    texts = [item.get("arguments") or ""]
    for part in [*(item.get("content") or []), *(item.get("summary") or [])]:
        texts.append(part.get("text") or part.get("refusal") or "")
    return " ".join(t for t in texts if t)


LLAMA_STACK: list[EntryPoint] = [
    RunShield(),
    Moderations(),
    GuardClientChat(),
    GuardClientChatStream(),
    AsyncGuardClientChatStream(),
    GuardClientResponses(),
    GuardClientResponsesStream(),
    AsyncGuardClientResponsesStream(),
]
