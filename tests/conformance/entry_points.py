"""Entry-point adapters: one small uniform interface over every way content enters the guard.

``adapter.run(case, word, env) -> Result`` submits the case's content through the entry point exactly as a
user of the README would, and says what happened. ``adapter.na(case)`` gives the reason a case makes no
sense for the entry point (the cell is skipped), or ``None``. Adapters use public API only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from llamaguard_guardrails import LlamaGuard, Policy, Verdict

from .cases import Case
from .common import NotApplicable, Result, conversation, guarded, json_safe
from .conformance_guard.backend import SAFE_WORD

POLICIES = {
    "default": Policy(),
    "timeout": Policy(timeout_s=0.5),
    "open": Policy(fail_mode="open"),
    "threshold": Policy(threshold=0.3),
}


class EntryPoint:
    """One row of the matrix."""

    id: str = ""
    group: str = ""
    marks: tuple[Any, ...] = ()  # pytest marks of its cells
    streams: bool = False  # consumes streamed answers (stream-only cases apply)
    downstream: bool = False  # runs something after its input check (a model, a tool, an upstream)
    downstream_kinds: tuple[str, ...] = ("model-called", "tool-ran", "upstream-called")
    fault_free_variants: frozenset[str] = frozenset()  # guard variants it has no option for

    def na(self, case: Case) -> str | None:
        """Why ``case`` makes no sense here (checked at collection), or None."""
        if case.stream_only and not self.streams:
            return "not a streaming entry point"
        if case.id == "d.stream_order" or case.id == "d.stream_block":
            return None if self.streams else "not a streaming entry point"
        if case.id == "d.input_first" and not self.downstream:
            return "returns a verdict; nothing runs after the check"
        if case.guard in self.fault_free_variants:
            return f"no option for the {case.guard!r} policy variant"
        try:
            self.forms(case, SAFE_WORD)
        except NotApplicable as exc:
            return str(exc)
        return None

    def forms(self, case: Case, word: str) -> Any:
        """The case in this entry point's input form (raises NotApplicable)."""
        return conversation(case, word)

    def run(self, case: Case, word: str, env: Any) -> Result:
        raise NotImplementedError


def verdict_result(verdict: Verdict) -> Result:
    if verdict.safe:
        return Result("passed", verdict.summary())
    return Result("blocked", verdict.summary())


# -- the core -------------------------------------------------------------------------------------------------


class Classify(EntryPoint):
    id, group = "LlamaGuard.classify", "core"

    def run(self, case: Case, word: str, env: Any) -> Result:
        guard: LlamaGuard = env.guard(case.guard)
        return guarded(lambda: verdict_result(guard.classify(self.forms(case, word))))


class AClassify(Classify):
    id = "LlamaGuard.aclassify"

    def run(self, case: Case, word: str, env: Any) -> Result:
        guard: LlamaGuard = env.guard(case.guard)
        return guarded(lambda: verdict_result(asyncio.run(guard.aclassify(self.forms(case, word)))))


class ClassifyBatch(Classify):
    """The conversation second in a batch, after a safe one."""

    id = "LlamaGuard.classify_batch"

    def run(self, case: Case, word: str, env: Any) -> Result:
        guard: LlamaGuard = env.guard(case.guard)
        return guarded(lambda: verdict_result(guard.classify_batch(["How do I bake bread?", self.forms(case, word)])[1]))


class Check(Classify):
    id = "LlamaGuard.check"

    def run(self, case: Case, word: str, env: Any) -> Result:
        guard: LlamaGuard = env.guard(case.guard)
        return guarded(lambda: Result("passed", guard.check(self.forms(case, word)).summary()))


# -- scale and the command line ----------------------------------------------------------------------------


class Moderate(EntryPoint):
    """``moderate`` (local engine) on a two-line JSONL file: a safe line, then the case's conversation."""

    id, group = "moderate (local)", "scale"

    def forms(self, case: Case, word: str) -> Any:
        return json_safe(conversation(case, word))

    def run(self, case: Case, word: str, env: Any) -> Result:
        from llamaguard_guardrails.scale import moderate

        source, out = env.tmp_path / "in.jsonl", env.tmp_path / "out.jsonl"
        lines = [[{"role": "user", "content": "How do I bake bread?"}], self.forms(case, word)]
        source.write_text("".join(json.dumps(line) + "\n" for line in lines))

        def go() -> Result:
            moderate(source, out, guard_factory=lambda: env.fresh_guard(case.guard), policy=POLICIES[case.guard], progress=False)
            rows = [json.loads(line) for line in out.read_text().splitlines()]
            neighbour_ok = rows[0]["status"] == "safe" or case.prop == "c"  # a model fault fails its whole batch
            if len(rows) != 2 or not neighbour_ok:
                return Result("crashed: rows", json.dumps(rows)[:300])
            row = rows[1]
            detail = f"{row['status']}: {row['error']}"
            if row["status"] == "invalid":
                return Result("rejected", detail)
            return Result("passed" if row["safe"] else "blocked", detail)

        return guarded(go)


class CliCheck(EntryPoint):
    """``llamaguard-guardrails check --conversation FILE --json`` (in process, the loader returning the
    scripted guard): exit 0 passed, 1 blocked, 2 rejected."""

    id, group = "CLI check", "scale"
    fault_free_variants = frozenset({"timeout", "open"})

    def forms(self, case: Case, word: str) -> Any:
        return json_safe(conversation(case, word))

    def run(self, case: Case, word: str, env: Any) -> Result:
        from llamaguard_guardrails import cli

        path = env.tmp_path / "conversation.json"
        path.write_text(json.dumps(self.forms(case, word)))
        argv = ["check", "--model", str(env.model_dir), "--conversation", str(path), "--json"]
        if case.guard == "threshold":
            argv += ["--threshold", "0.3"]
        loaded: list[LlamaGuard] = []
        env.monkeypatch.setattr(LlamaGuard, "from_pretrained", lambda *a, **k: loaded.append(env.fresh_guard()) or loaded[-1])

        def go() -> Result:
            code = cli.main(argv)
            if code in (0, 1) and not loaded:
                return Result("crashed: the CLI did not load its guard through LlamaGuard.from_pretrained")
            return Result({0: "passed", 1: "blocked", 2: "rejected"}.get(code, f"crashed: exit {code}"), f"exit {code}")

        return guarded(go)


CORE = [Classify(), AClassify(), ClassifyBatch(), Check()]
SCALE = [Moderate(), CliCheck()]
__all__ = ["CORE", "POLICIES", "SCALE", "EntryPoint", "verdict_result"]
