"""Deciding which streamed chunks may be released, so no unchecked content ever reaches the caller.

Chunks are folded as LangChain adds them up (strings, message chunks of one type, ``AddableDict``
and generation chunks), keeping the message ``name`` that LangChain's ``+`` drops. Chunks that
cannot be added to what came before (plain dicts such as LangGraph ``stream_mode="updates"``
yields, a string then a message chunk, message chunks with different names, whole messages,
lists) start a new *segment*. Every segment is checked as the last output, in the context of the input
and of the segments before it, so every chunk's content is shown to the guard before it is
released; a chunk the guard cannot read raises :class:`InvalidConversationError` (the stream fails
closed).

Two modes:

- ``"buffered"`` (default): every chunk is held; at the end every segment is checked (one batched
  pass), then the chunks are released unchanged (all at once). Nothing unchecked is ever released.
- ``"windowed"``: plain text is released in windows. Whenever ``window_size`` new characters of a
  plain-text segment have arrived, the output so far is checked in context (input + earlier
  segments + the segment's text); if safe, the chunks that end at least ``overlap`` characters
  before the end are released. The held-back tail means that text straddling a window boundary is
  always checked whole before any of it is released: an unsafe phrase of up to ``overlap + 1``
  characters split across chunks never reaches the caller, not even in part. A segment that ends
  (the next chunk does not fold into it) is checked whole, then released; at the end the last
  segment is checked whole before the rest is released. Chunks that are not plain text (tool-call
  chunks, reasoning, images, dicts) are never released early: from the first one on, their segment
  waits for its whole check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessageChunk
from langchain_core.outputs import GenerationChunk
from langchain_core.runnables.utils import AddableDict

from ..core.windows import StreamMode, released_through, validate_window, window_due
from .convert import text_of

_NO_FOLD = object()


def fold(chunks: list[Any]) -> Any:
    """Add chunks up as LangChain's ``Runnable.transform`` does for inputs: ``a + b``, else keep the last."""
    final = chunks[0]
    for chunk in chunks[1:]:
        try:
            final = final + chunk
        except TypeError:
            final = chunk
    return final


def fold_pair(a: Any, b: Any) -> Any:
    """``a + b`` when LangChain streams add them up (same kind of chunk), else a marker that they do not fold."""
    addable = (
        (isinstance(a, str) and isinstance(b, str))
        or (isinstance(a, (BaseMessageChunk, GenerationChunk)) and type(a) is type(b))
        or (isinstance(a, AddableDict) and isinstance(b, Mapping))
    )
    if not addable:
        return _NO_FOLD
    if isinstance(a, BaseMessageChunk):
        return _fold_messages(a, b)
    try:
        return a + b
    except (TypeError, ValueError):
        return _NO_FOLD


def _fold_messages(a: BaseMessageChunk, b: BaseMessageChunk) -> Any:
    """``a + b`` keeping the ``name`` that LangChain's ``+`` drops; chunks with different names do not fold,
    so every name a caller receives is shown to the guard with its segment."""
    if a.name and b.name and a.name != b.name:
        return _NO_FOLD
    try:
        folded = a + b
    except (TypeError, ValueError):
        return _NO_FOLD
    name = a.name or b.name
    return folded.model_copy(update={"name": name}) if name and folded.name != name else folded


@dataclass
class _Segment:
    """Consecutive chunks that fold into one value."""

    start: int  # index of its first chunk in StreamWindow.chunks
    value: Any
    count: int = 1
    textual: bool = True  # every chunk so far is plain text
    text: str = ""  # the text of its plain-text chunks
    ends: list[int] = field(default_factory=list)  # end offset in ``text`` of each plain-text chunk
    checked: int = -1  # len(text) at the last check of the whole segment's text (-1: never)

    @property
    def end(self) -> int:
        return self.start + self.count

    @property
    def covered(self) -> bool:
        """True when a check already covered the whole segment."""
        return self.textual and self.checked == len(self.text)


@dataclass
class WindowCheck:
    """A check a stream needs before it releases more.

    ``outputs`` are the output values to show the guard after the input, in order (the last one is
    the checked one); empty when an earlier check already covered them. After a safe verdict,
    :meth:`release` gives the chunks that may now be released.
    """

    outputs: list[Any]
    _release: Callable[[], list[Any]]

    def release(self) -> list[Any]:
        return self._release()


class StreamWindow:
    """Holds streamed chunks and says what to check and what may be released. Runs no checks itself.

    Feed each chunk to :meth:`add` and, at the end, call :meth:`finish`; both return the
    :class:`WindowCheck` s due. Run them all; when every one is safe, release each one's chunks in order.
    """

    def __init__(self, mode: StreamMode = "buffered", window_size: int = 256, overlap: int = 64) -> None:
        validate_window(mode, window_size, overlap)
        self.mode = mode
        self.window_size = window_size
        self.overlap = overlap
        self.chunks: list[Any] = []
        self.segments: list[_Segment] = []
        self._released = 0

    def add(self, chunk: Any) -> list[WindowCheck]:
        """Hold ``chunk``; the checks due before anything more may be released (often none)."""
        self.chunks.append(chunk)
        checks: list[WindowCheck] = []
        current = self.segments[-1] if self.segments else None
        folded = _NO_FOLD if current is None else fold_pair(current.value, chunk)
        if current is not None and folded is not _NO_FOLD:
            current.value = folded
            current.count += 1
        else:
            if current is not None and self.mode == "windowed":
                checks.append(self._whole(len(self.segments) - 1))  # it is complete: check and release it
            current = _Segment(start=len(self.chunks) - 1, value=chunk)
            self.segments.append(current)
        self._add_text(current, chunk)
        window = self._window()
        return checks + ([window] if window is not None else [])

    def finish(self) -> list[WindowCheck]:
        """At the end of the stream: the checks that cover everything not yet released."""
        if not self.segments:
            return []
        if self.mode == "buffered":
            return [self._whole(i) for i in range(len(self.segments))]
        return [self._whole(len(self.segments) - 1)]

    def sample(self) -> Any:
        """The last chunk held: what a refusal at the end of the stream is shaped like."""
        return self.chunks[-1] if self.chunks else None

    # -- internals --------------------------------------------------------------------------------

    def _add_text(self, segment: _Segment, chunk: Any) -> None:
        if self.mode == "buffered" or not segment.textual:
            return
        text = text_of(chunk)
        if text is None:
            segment.textual = False
            return
        segment.text += text
        segment.ends.append(len(segment.text))

    def _window(self) -> WindowCheck | None:
        """A check of the current plain-text segment, when ``window_size`` new characters arrived."""
        segment = self.segments[-1]
        if self.mode != "windowed" or not segment.textual:
            return None
        if not window_due(len(segment.text), segment.checked, self.window_size):
            return None
        length = len(segment.text)
        outputs = [s.value for s in self.segments[:-1]] + [segment.text]

        def release() -> list[Any]:
            segment.checked = length
            return self._release_to(segment.start + released_through(segment.ends, length, self.overlap))

        return WindowCheck(outputs, release)

    def _whole(self, index: int) -> WindowCheck:
        """A check of segment ``index`` whole (in the context of the ones before), releasing all its chunks."""
        segment = self.segments[index]
        outputs = [] if segment.covered else [s.value for s in self.segments[: index + 1]]
        end = segment.end

        def release() -> list[Any]:
            segment.checked = len(segment.text) if segment.textual else segment.checked
            return self._release_to(end)

        return WindowCheck(outputs, release)

    def _release_to(self, end: int) -> list[Any]:
        out = self.chunks[self._released : end]
        self._released = max(self._released, end)
        return out
