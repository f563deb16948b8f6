"""Guarded streams: the whole upstream stream is buffered and checked, then its chunks (or events) are
replayed, or the refusal in their place. Nothing is released before the check covering it returned."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from ...enforce import Refusal
from .checker import Checker
from .fields import Check


class StreamCheck(Protocol):
    """What a guarded stream asks of its endpoint: the checks of the buffered chunks, and their refusal."""

    def stream_checks(self, chunks: list[Any]) -> list[Check]: ...

    def stream_refusal(self, chunks: list[Any], text: str) -> list[Any]: ...


class _BufferedStream:
    """What the sync and async streams share (no I/O): the upstream stream, and what replaces it once checked."""

    def __init__(self, stream: Any, check: StreamCheck, checker: Checker) -> None:
        self._stream = stream
        self._check = check
        self._checker = checker
        self._released: Iterator[Any] | None = None

    @classmethod
    def replay(cls, items: list[Any]) -> Any:
        """A stream of fixed ``items`` (a refusal returned in place of a stream)."""
        stream = cls(None, None, None)  # type: ignore[arg-type]  # nothing to check: released as it is
        stream._released = iter(items)
        return stream

    def _outcome(self, chunks: list[Any], refusal: Refusal | None) -> Iterator[Any]:
        return iter(chunks if refusal is None else self._check.stream_refusal(chunks, refusal.text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class GuardedStream(_BufferedStream):
    """A sync stream, released once the whole of it was checked."""

    def _release(self) -> Iterator[Any]:
        chunks: list[Any] = []
        try:
            chunks.extend(self._stream)
        finally:
            _close(self._stream)
        return self._outcome(chunks, self._checker.run(self._check.stream_checks(chunks)))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._released is None:
            self._released = self._release()
        return next(self._released)

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._released = iter(())
        _close(self._stream)


class AsyncGuardedStream(_BufferedStream):
    """An async stream, released once the whole of it was checked."""

    async def _release(self) -> Iterator[Any]:
        chunks: list[Any] = []
        try:
            chunks.extend([chunk async for chunk in self._stream])
        finally:
            await _aclose(self._stream)
        return self._outcome(chunks, await self._checker.arun(self._check.stream_checks(chunks)))

    def __aiter__(self) -> AsyncGuardedStream:
        return self

    async def __anext__(self) -> Any:
        if self._released is None:
            self._released = await self._release()
        try:
            return next(self._released)
        except StopIteration:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._released = iter(())
        await _aclose(self._stream)


def _close(stream: Any) -> None:
    """Close ``stream`` if it can be closed."""
    closer = getattr(stream, "close", None)
    if callable(closer):
        closer()


async def _aclose(stream: Any) -> None:
    """Close ``stream`` if it can be closed, awaiting an async ``close``."""
    closer = getattr(stream, "close", None)
    if callable(closer):
        result = closer()
        if hasattr(result, "__await__"):
            await result
