"""Guarded streams: nothing is released before a check covering it returned safe.

- ``stream_mode="buffered"`` (default): the whole upstream stream is read and checked, then its chunks (or
  events) are replayed, or the refusal in their place.
- ``stream_mode="windowed"``: while the answer is plain text, whenever ``window_size`` new characters arrived the
  answer so far is checked in context (every choice, everything streamed until then), and the chunks that end at
  least ``window_overlap`` characters before the checked text's end are released (:mod:`..core.windows`, the same
  arithmetic as the LangChain adapter). From the first chunk that is not plain text (a tool call, reasoning, a
  refusal ...) on, the rest waits for the check of the whole answer. A block mid-stream raises (or ends the stream
  with the refusal, under ``on_block="refuse"``); the text released before it was checked safe.

Only iteration, ``close`` and the context managers are offered: the upstream stream (and its raw HTTP response)
is not reachable through a guarded one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ..core.windows import StreamMode, TextWindow, validate_window
from ..enforce import Refusal
from .checker import Checker
from .fields import Check


class StreamCheck(Protocol):
    """What a guarded stream asks of its endpoint: the text of a chunk, the checks of the chunks so far, and
    their refusal."""

    def chunk_text(self, chunk: Any) -> str | None: ...

    def stream_checks(self, chunks: list[Any]) -> list[Check]: ...

    def stream_refusal(self, chunks: list[Any], text: str) -> list[Any]: ...


class StreamWindow:
    """The options of windowed release (validated once per client)."""

    def __init__(self, mode: StreamMode = "buffered", window_size: int = 256, overlap: int = 64) -> None:
        validate_window(mode, window_size, overlap)
        self.mode, self.window_size, self.overlap = mode, window_size, overlap


class _Held:
    """The chunks read so far and what may be released (no I/O; the sync and async streams share it)."""

    def __init__(self, check: StreamCheck, window: StreamWindow) -> None:
        self.check = check
        self.windowed = window.mode == "windowed"
        self.text = TextWindow(window.window_size, window.overlap)
        self.textual = True
        self.chunks: list[Any] = []
        self.released = 0
        self.checked = -1  # len(chunks) at the last safe check

    def add(self, chunk: Any) -> bool:
        """Hold ``chunk``; ``True`` when a window check is due."""
        self.chunks.append(chunk)
        if not self.windowed or not self.textual:
            return False
        text = self.check.chunk_text(chunk)
        if text is None:
            self.textual = False  # from here on, the whole answer is checked before the rest is released
            return False
        return self.text.add(text)

    def checks(self, final: bool) -> list[Check]:
        """The checks of everything held (none at the end when the last check already covered everything)."""
        if final and self.checked == len(self.chunks):
            return []
        return self.check.stream_checks(self.chunks)

    def passed(self, final: bool) -> list[Any]:
        """After a safe check: the chunks it releases."""
        self.checked = len(self.chunks)
        end = len(self.chunks) if final else self.text.release(self.text.length)
        out = self.chunks[self.released : end]
        self.released = max(self.released, end)
        return out

    def refused(self, refusal: Refusal) -> list[Any]:
        """The refusal in place of what was not released."""
        return self.check.stream_refusal(self.chunks[self.released :], refusal.text)


class GuardedStream:
    """A sync guarded stream."""

    def __init__(self, stream: Any, check: StreamCheck, checker: Checker, window: StreamWindow) -> None:
        self._stream = stream
        self._iter: Any = None
        self._held = _Held(check, window)
        self._checker = checker
        self._out: deque[Any] = deque()
        self._done = False

    def __iter__(self) -> GuardedStream:
        return self

    def __next__(self) -> Any:
        while not self._out:
            if self._done:
                raise StopIteration
            if self._iter is None:
                self._iter = iter(self._stream)
            try:
                due = self._held.add(next(self._iter))  # a chunk the guard cannot read raises here
            except StopIteration:
                self._settle(True)
                continue
            except BaseException:
                self.close()
                raise
            if due:
                self._settle(False)
        return self._out.popleft()

    def _settle(self, final: bool) -> None:
        self._done = final
        try:  # reading what was held (InvalidConversationError) or a block closes the upstream stream
            refusal = self._checker.run(self._held.checks(final))
        except BaseException:
            self.close()
            raise
        self._release(refusal, final)

    def _release(self, refusal: Refusal | None, final: bool) -> None:
        if refusal is not None:
            self._out.extend(self._held.refused(refusal))
            self._stop()
        else:
            self._out.extend(self._held.passed(final))
            if final:
                self._stop()

    def _stop(self) -> None:
        self._done = True
        _close(self._stream)

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._out.clear()
        self._stop()


class AsyncGuardedStream(GuardedStream):
    """An async guarded stream."""

    def __aiter__(self) -> AsyncGuardedStream:
        return self

    async def __anext__(self) -> Any:
        while not self._out:
            if self._done:
                raise StopAsyncIteration
            if self._iter is None:
                self._iter = aiter(self._stream)
            try:
                due = self._held.add(await anext(self._iter))
            except StopAsyncIteration:
                await self._asettle(True)
                continue
            except BaseException:
                await self.aclose()
                raise
            if due:
                await self._asettle(False)
        return self._out.popleft()

    async def _asettle(self, final: bool) -> None:
        self._done = final
        try:
            refusal = await self._checker.arun(self._held.checks(final))
        except BaseException:
            await self.aclose()
            raise
        if refusal is not None or final:
            await _aclose(self._stream)
        self._release(refusal, final)

    def _stop(self) -> None:
        self._done = True  # the async stream is closed by aclose / _asettle

    async def __aenter__(self) -> AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._out.clear()
        self._done = True
        await _aclose(self._stream)

    close = aclose  # type: ignore[assignment]  # the SDKs' async streams have ``await stream.close()``


class Replay:
    """A stream of fixed chunks (a refusal returned in place of a stream), sync and async."""

    def __init__(self, items: list[Any]) -> None:
        self._items = deque(items)

    def __iter__(self) -> Replay:
        return self

    def __next__(self) -> Any:
        if not self._items:
            raise StopIteration
        return self._items.popleft()

    def __aiter__(self) -> Replay:
        return self

    async def __anext__(self) -> Any:
        if not self._items:
            raise StopAsyncIteration
        return self._items.popleft()

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self._items.clear()

    async def __aenter__(self) -> Replay:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._items.clear()

    def close(self) -> None:
        self._items.clear()


class AsyncReplay(Replay):
    """:class:`Replay` whose ``close`` is awaited, as the SDKs' async streams'."""

    async def close(self) -> None:  # type: ignore[override]
        self._items.clear()


def _close(stream: Any) -> None:
    """Close ``stream`` if it can be closed."""
    closer: Callable[[], Any] | None = getattr(stream, "close", None)
    if callable(closer):
        closer()


async def _aclose(stream: Any) -> None:
    """Close ``stream`` if it can be closed, awaiting an async ``close``."""
    closer = getattr(stream, "close", None)
    if callable(closer):
        result = closer()
        if hasattr(result, "__await__"):
            await result
