"""The conformance suite: the same attacks and faults through every entry point of the guard.

Rows: entry points (:mod:`.entry_points`, :mod:`.entry_points_langchain`, :mod:`.entry_points_llama_stack`,
:mod:`.entry_points_client`, :mod:`.entry_points_serve`).
Columns: cases (:mod:`.cases`), grouped by property: (a) the unsafe word in any channel blocks, (b) unknown or
partial items raise a typed error or block, (c) model faults block (fail-open passes loudly), (d) nothing is
released before the check covering it returned. A cell that makes no sense is skipped with its reason; a
cell that fails today because of a known hole is ``xfail(strict=True)`` (:mod:`.known_holes`), so closing the
hole turns it into an XPASS failure until the mark is removed. The matrix is printed at the end of the run.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from .cases import CASES, Case
from .common import Result
from .conformance_guard.backend import EVENTS, SAFE_WORD, UNSAFE_WORD
from .entry_points import CORE, SCALE, EntryPoint
from .entry_points_client import CLIENT
from .entry_points_langchain import LANGCHAIN
from .entry_points_llama_stack import LLAMA_STACK
from .entry_points_serve import SERVE
from .known_holes import hole

pytestmark = [
    pytest.mark.slow,  # ~1,000 cells: ~5 minutes on 2 cores
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),  # nameless tool calls
]

ENTRY_POINTS: list[EntryPoint] = [*CORE, *LANGCHAIN, *LLAMA_STACK, *CLIENT, *SERVE, *SCALE]
DOWNSTREAM = ("model-called", "tool-ran", "upstream-called")


def cells() -> list[Any]:
    params = []
    for entry in ENTRY_POINTS:
        for case in CASES:
            marks = list(entry.marks)
            reason = entry.na(case)
            if reason is not None:
                marks.append(pytest.mark.skip(reason=f"n.a.: {reason}"))
            elif (why := hole(entry.id, case.id)) is not None:
                marks.append(pytest.mark.xfail(strict=True, reason=why))
            params.append(pytest.param(entry, case, id=f"{entry.id}|{case.id}", marks=marks))
    return params


@pytest.mark.parametrize(("entry", "case"), cells())
def test_cell(entry: EntryPoint, case: Case, env: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llamaguard_guardrails")
    result = entry.run(case, UNSAFE_WORD, env)
    if case.prop == "d":
        return check_release_order(entry, case, result)
    assert result.outcome in case.accept, f"{case.title}: {result} (expected {sorted(case.accept)})"
    if case.id == "c.fail_open":
        loud = result.loud
        if loud is None:
            loud = any(r.levelno >= logging.ERROR and "fail_mode='open'" in r.getMessage() for r in caplog.records)
        assert loud, "fail-open let content through without an ERROR record"
    if case.twin is not None:
        env.release_hangs()
        EVENTS.clear()
        twin = entry.run(case, SAFE_WORD, env)
        assert twin.outcome in case.twin, f"safe twin of {case.title}: {twin} (expected {sorted(case.twin)})"


def check_release_order(entry: EntryPoint, case: Case, result: Result) -> None:
    assert result.outcome in case.accept, f"{case.title}: {result} (expected {sorted(case.accept)})"
    checked = EVENTS.of("checked")
    if case.id == "d.input_first":
        downstream = [n for kind in entry.downstream_kinds for n, _ in EVENTS.of(kind)]
        assert downstream, "nothing ran after the check"
        assert checked and checked[0][0] < min(downstream), f"ran before its check returned: {EVENTS.events}"
        return
    released = ""
    for n, kind, text in list(EVENTS.events):
        if kind == "released":
            released += text
            shown = normal(released)
        elif kind == "released-whole":
            shown = normal(text)
        else:
            continue
        assert not shown or any(m < n and shown in normal(t) for m, t in checked), (
            f"released {shown[-80:]!r} before a check covering it had returned"
        )


def normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
