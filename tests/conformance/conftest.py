"""Fixtures of the conformance suite, and the matrix printed at the end of the run."""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llamaguard_guardrails import LlamaGuard
from llamaguard_guardrails.loading import load_prompt_builder

from .conformance_guard.backend import EVENTS, conformance_guard
from .entry_points import POLICIES


class Env:
    """What adapters need: guards per policy variant, the servers (started on first use), a temp dir."""

    def __init__(self, model_dir: Path, builder: Any, servers: Any) -> None:
        self.model_dir = model_dir
        self.builder = builder
        self._servers = servers
        self._guards: dict[str, LlamaGuard] = {}
        self._fresh: list[LlamaGuard] = []
        self._served: dict[str, Any] = {}
        self._remote: dict[str, LlamaGuard] = {}
        self.tmp_path: Path = Path()
        self.monkeypatch: pytest.MonkeyPatch | None = None

    def guard(self, variant: str = "default") -> LlamaGuard:
        """The shared guard of ``variant`` (its policy: ``POLICIES[variant]``)."""
        if variant not in self._guards:
            self._guards[variant] = conformance_guard(self.model_dir, policy=POLICIES[variant], builder=self.builder)
        return self._guards[variant]

    def fresh_guard(self, variant: str = "default") -> LlamaGuard:
        """A new guard, for entry points that close the guard they are given."""
        guard = conformance_guard(self.model_dir, policy=POLICIES[variant], builder=self.builder)
        self._fresh.append(guard)
        return guard

    def served_url(self, variant: str = "default") -> str:
        """The URL of ``llamaguard-guardrails serve``'s app over the shared guard of ``variant`` (one server each,
        started on first use)."""
        if variant not in self._served:
            from llamaguard_guardrails.serve.app import create_app
            from llamaguard_guardrails.serve.background import BackgroundServer

            self._served[variant] = BackgroundServer(create_app(self.guard(variant), warm=False)).start().wait_ready()
        return self._served[variant].url

    def served_guard(self, variant: str = "default") -> LlamaGuard:
        """``LlamaGuard.from_server`` on :meth:`served_url`, with the variant's policy (the server always fails
        closed; the client applies its policy's fail mode to a check the server could not finish)."""
        if variant not in self._remote:
            url = self.served_url(variant)
            self._remote[variant] = LlamaGuard.from_server(url, policy=POLICIES[variant], max_retries=0)
        return self._remote[variant]

    @property
    def upstream(self) -> Any:
        return self._servers.upstream()

    @property
    def stack(self) -> Any:
        return self._servers.stack()

    def release_hangs(self) -> None:
        for guard in [*self._guards.values(), *self._fresh]:
            guard.backend.release.set()
            guard.backend.release.clear()

    def close(self) -> None:
        for remote in self._remote.values():
            remote.close()
        for guard in [*self._guards.values(), *self._fresh]:
            guard.backend.release.set()
        for server in self._served.values():
            server.stop()
        for guard in [*self._guards.values(), *self._fresh]:
            guard.close()


class Servers:
    """The fake upstream LLM and the ``llama stack run`` server: one each per session, started when needed."""

    def __init__(self, home: Path, model_dir: Path) -> None:
        self.home, self.model_dir = home, model_dir
        self._upstream: Any = None
        self._stack: Any = None
        self._starting: threading.Thread | None = None
        self._error: BaseException | None = None

    def prestart(self) -> None:
        """Start ``llama stack run`` in the background now (it takes a while), so it is up when needed."""
        if self._starting is None and self._stack is None:
            self._starting = threading.Thread(target=self._start, name="conformance-stack", daemon=True)
            self._starting.start()

    def _start(self) -> None:
        from .servers import ConformanceStack

        try:
            self._stack = ConformanceStack(self.home, self.model_dir)
        except BaseException as exc:  # noqa: BLE001 - reported to the first test that needs the server
            self._error = exc

    def upstream(self) -> Any:
        if self._upstream is None:
            from .servers import FakeUpstream

            self._upstream = FakeUpstream()
        return self._upstream

    def stack(self) -> Any:
        self.prestart()
        if self._starting is not None:
            self._starting.join()
        if self._error is not None:
            raise RuntimeError(f"llama stack run did not start: {self._error}") from self._error
        return self._stack

    def stop(self) -> None:
        if self._starting is not None:
            self._starting.join()
        if self._upstream is not None:
            self._upstream.stop()
        if self._stack is not None:
            self._stack.stop()


@pytest.fixture(scope="session")
def conformance_env(
    request: pytest.FixtureRequest, test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    servers = Servers(tmp_path_factory.mktemp("conformance-stack"), test_model_dir)
    if any("llama stack " in item.nodeid for item in request.session.items):
        servers.prestart()  # one server for the session, starting while the in-process cells run
    env = Env(test_model_dir, load_prompt_builder(test_model_dir), servers)
    yield env
    env.close()
    servers.stop()


@pytest.fixture
def env(conformance_env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    conformance_env.tmp_path = tmp_path
    conformance_env.monkeypatch = monkeypatch
    EVENTS.clear()
    yield conformance_env
    conformance_env.release_hangs()


# -- the matrix -------------------------------------------------------------------------------------------

_CELL = re.compile(r"test_cell\[(?P<entry>[^|\]]+)\|(?P<case>[^\]]+)\]")
_RESULTS: dict[tuple[str, str], str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    match = _CELL.search(report.nodeid)
    if match is None:
        return
    key = (match["entry"], match["case"])
    longrepr = str(report.longrepr or "")
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if hasattr(report, "wasxfail") and report.skipped:
            _RESULTS[key] = "xfail"
        elif report.skipped:
            _RESULTS[key] = "n.a."
        elif report.failed and "XPASS(strict)" in longrepr:
            _RESULTS[key] = "XPASS"
        elif report.failed:
            _RESULTS[key] = "FAIL"
        else:
            _RESULTS[key] = "pass"


SYMBOLS = {"pass": ".", "xfail": "x", "FAIL": "F", "XPASS": "X", "n.a.": " "}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    from .test_conformance import CASES, ENTRY_POINTS

    entries = [e.id for e in ENTRY_POINTS if any(k[0] == e.id for k in _RESULTS)]
    cases = [c for c in CASES if any(k[1] == c.id for k in _RESULTS)]
    write = terminalreporter.write_line
    terminalreporter.section("conformance matrix: entry point x property")
    props = {"a": "(a) channels", "b": "(b) unknown items", "c": "(c) faults", "d": "(d) release order"}
    width = max(len(e) for e in entries)
    write(f"{'':<{width}}  " + "  ".join(f"{v:<18}" for v in props.values()))
    for entry in entries:
        cells = []
        for prop in props:
            counts: dict[str, int] = defaultdict(int)
            for case in cases:
                if case.prop == prop and (entry, case.id) in _RESULTS:
                    counts[_RESULTS[(entry, case.id)]] += 1
            cells.append(_summary(counts))
        write(f"{entry:<{width}}  " + "  ".join(f"{c:<18}" for c in cells))
    total: dict[str, int] = defaultdict(int)
    for outcome in _RESULTS.values():
        total[outcome] += 1
    applicable = sum(total.values()) - total["n.a."]
    write(
        f"{len(_RESULTS)} cells ({len(entries)} entry points x {len(cases)} cases): {applicable} applicable - "
        f"{total['pass']} pass, {total['xfail']} fail as known holes (xfail), {total['FAIL']} FAIL, "
        f"{total['XPASS']} XPASS (a hole closed: remove its mark); {total['n.a.']} n.a."
    )
    terminalreporter.section("conformance cells: . pass  x known hole (xfail)  F FAIL  X XPASS  (blank) n.a.")
    for n, case in enumerate(cases):
        write(f"{n:>3} {case.id:<28} {case.title}")
    write(f"{'':<{width}}  " + "".join(f"{n % 10}" for n in range(len(cases))))
    for entry in entries:
        row = "".join(SYMBOLS.get(_RESULTS.get((entry, c.id), "n.a."), "?") for c in cases)
        write(f"{entry:<{width}}  {row}")


def _summary(counts: dict[str, int]) -> str:
    applicable = sum(v for k, v in counts.items() if k != "n.a.")
    if not applicable:
        return "n.a."
    text = f"{counts['pass']}/{applicable} pass"
    if counts["xfail"]:
        text += f", {counts['xfail']} x"
    bad = counts["FAIL"] + counts["XPASS"]
    if bad:
        text += f", {bad} F!"
    return text
