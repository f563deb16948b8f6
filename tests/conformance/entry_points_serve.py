"""The served guard: ``llamaguard-guardrails serve``'s app on 127.0.0.1 over the conformance guard, reached the ways
users reach it: ``LlamaGuard.from_server`` (the guard every adapter takes), adapters given that guard in place of
an in-process one (an agent's middleware, a streamed chain, the OpenAI and OGX client guards: eight workers sharing
one server), and ``/v1/moderations`` through the official ``openai`` SDK (what OGX 1.x and OpenAI clients call).

A check the server could not finish is an HTTP error (500 guard error, 504 deadline), never ``flagged: false``:
the caller gets no verdict that lets content through, which counts as blocked here.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

from llamaguard_guardrails import LlamaGuard

from .cases import Case
from .common import NotApplicable, Result, guarded
from .entry_points import EntryPoint, verdict_result
from .entry_points_client import OgxResponsesStream, OpenAIResponsesStream
from .entry_points_langchain import GuardChainStream, Middleware

BREAD = "How do I bake bread?"


class Served(EntryPoint):
    group = "serve"

    def na(self, case: Case) -> str | None:
        for module in ("fastapi", "uvicorn", "openai"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (the serve extra)"
        return super().na(case)


class FromServerClassify(Served):
    id = "LlamaGuard.from_server .classify"

    def run(self, case: Case, word: str, env: Any) -> Result:
        guard: LlamaGuard = env.served_guard(case.guard)
        return guarded(lambda: verdict_result(guard.classify(self.forms(case, word))))


class FromServerAClassify(FromServerClassify):
    id = "LlamaGuard.from_server .aclassify"

    def run(self, case: Case, word: str, env: Any) -> Result:
        guard: LlamaGuard = env.served_guard(case.guard)
        return guarded(lambda: verdict_result(asyncio.run(guard.aclassify(self.forms(case, word)))))


class ServedModerations(Served):
    """``OpenAI(base_url=server).moderations.create(input=[safe, text])``: the text's result flagged blocks."""

    id = "serve /v1/moderations (openai SDK)"
    fault_free_variants = frozenset({"open"})  # the server always fails closed (an HTTP error, never a pass)

    def forms(self, case: Case, word: str) -> Any:
        if case.text is None:
            raise NotApplicable("moderations take plain strings")
        return case.text(word)

    def run(self, case: Case, word: str, env: Any) -> Result:
        import openai

        text = self.forms(case, word)
        client = openai.OpenAI(base_url=f"{env.served_url(case.guard)}/v1", api_key="conformance", max_retries=0)
        try:
            result = client.moderations.create(input=[BREAD, text]).results[1]
        except openai.APIStatusError as exc:
            if 400 <= exc.status_code < 500:
                return Result("rejected", str(exc)[:200])
            if exc.status_code in (500, 504):  # the check failed or missed its deadline: no verdict, nothing passes
                return Result("blocked", str(exc)[:200])
            return Result(f"crashed: HTTP {exc.status_code}", str(exc)[:200])
        except Exception as exc:  # noqa: BLE001 - every failure is an outcome
            return Result(f"crashed: {type(exc).__name__}", str(exc)[:200])
        finally:
            client.close()
        if result.flagged:
            return Result("blocked", str([k for k, v in result.categories.model_dump().items() if v]))
        return Result("passed", "not flagged")


class OnServedGuard(Served):
    """An adapter's entry point unchanged, given ``LlamaGuard.from_server`` where it takes a guard."""

    def __init__(self, inner: EntryPoint) -> None:
        self.inner = inner
        self.id = f"{inner.id} on from_server"
        for name in ("marks", "streams", "downstream", "downstream_kinds", "fault_free_variants"):
            setattr(self, name, getattr(inner, name))

    def na(self, case: Case) -> str | None:
        return Served.na(self, case) or self.inner.na(case)

    def forms(self, case: Case, word: str) -> Any:
        return self.inner.forms(case, word)

    def run(self, case: Case, word: str, env: Any) -> Result:
        return self.inner.run(case, word, _ServedEnv(env))


class _ServedEnv:
    """The conformance environment with the served guard of each policy variant as its guard."""

    def __init__(self, env: Any) -> None:
        self._env = env

    def guard(self, variant: str = "default") -> LlamaGuard:
        return self._env.served_guard(variant)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


SERVE: list[EntryPoint] = [
    FromServerClassify(),
    FromServerAClassify(),
    ServedModerations(),
    *(
        OnServedGuard(inner)
        for inner in (Middleware(), GuardChainStream(), OpenAIResponsesStream(), OgxResponsesStream())
    ),
]
