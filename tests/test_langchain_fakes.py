"""Shared test doubles for the LangChain adapter tests (no tests here).

- :func:`planted_guard`: a real ``LlamaGuard`` (real prompt builder) whose model step is scripted:
  the checked turn is unsafe iff it contains a planted phrase (so context never decides a verdict).
- :class:`ScriptedChatModel`: a fake chat model that answers from a script (tool calls included),
  streams word by word, records every call and accepts ``bind_tools`` (for ``create_agent``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field

from llamaguard_guardrails.testing import scripted_guard

#: Planted phrases and the category the scripted guard answers with.
PLANTED = {"build a bomb": "S9", "rm -rf": "S14", "poison": "S1", "nerve agent": "S9"}


def last_turn(text: str) -> str:
    """The checked (last) turn of the conversation text the guard showed the model."""
    parts = re.split(r"(?m)^(User|Agent): ", text)
    pairs = list(zip(parts[1::2], parts[2::2]))
    if not pairs:
        return text
    role, out = pairs[-1][0], []
    for r, t in reversed(pairs):
        if r != role:
            break
        out.append(t)
    return "".join(reversed(out))


def planted_rule(text: str) -> str | None:
    turn = last_turn(text).lower()
    for phrase, category in PLANTED.items():
        if phrase in turn:
            return category
    return None


@functools.cache
def planted_guard(model_dir: Path):
    """One shared scripted guard; its verdict cache is off so every check reaches ``backend.seen``."""
    from llamaguard_guardrails import LlamaGuard

    options = {"cache_size": 0} if "cache_size" in inspect.signature(LlamaGuard).parameters else {}
    return scripted_guard(model_dir, planted_rule, **options)


class ScriptedChatModel(GenericFakeChatModel):
    """``GenericFakeChatModel`` + call recording + ``bind_tools`` + streamed tool calls."""

    calls: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.calls.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kw)

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any):
        message = self._generate(messages, stop, run_manager, **kw).generations[0].message
        content = message.content
        pieces = re.split(r"(\s)", content) if isinstance(content, str) and content else []
        for token in pieces:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token, id=message.id))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        rest: dict[str, Any] = {}
        if isinstance(content, list):
            rest["content"] = content
        if getattr(message, "tool_calls", None):
            rest["tool_call_chunks"] = [
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                for i, c in enumerate(message.tool_calls)
            ]
        if rest:
            chunk = ChatGenerationChunk(message=AIMessageChunk(**{"content": "", **rest}, id=message.id))
            if run_manager:
                run_manager.on_llm_new_token("", chunk=chunk)
            yield chunk


def scripted_model(*answers: AIMessage | str) -> ScriptedChatModel:
    return ScriptedChatModel(messages=iter(list(answers)))


def tool_call(name: str, args: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def run_async(fn):
    """Run an ``async def`` test with ``asyncio.run`` (the project has no async pytest plugin)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper
