"""Deciding which streamed chunks may be released, so no unchecked text ever reaches the caller.

Two modes:

- ``"buffered"`` (default): every chunk is held; the complete output is checked in context, then
  the chunks are released unchanged (all at once). Nothing unchecked is ever released.
- ``"windowed"``: text is released in windows. Whenever ``window_size`` new characters have
  arrived, the whole output so far is checked in context (input + everything released + the new
  window); if safe, the chunks that end at least ``overlap`` characters before the end are
  released. The held-back tail means that text straddling a window boundary is always checked
  whole before any of it is released: an unsafe phrase of up to ``overlap + 1`` characters split
  across chunks never reaches the caller, not even in part. At the end the complete output is
  checked once more before the rest is released. Chunks that are not plain text (tool-call chunks,
  images, dicts) are never released early: from the first one on, everything waits for the final
  check.
"""

from __future__ import annotations

from typing import Any, Literal

from ..core.errors import InvalidPolicyError
from .convert import text_of

StreamMode = Literal["buffered", "windowed"]


def fold(chunks: list[Any]) -> Any:
    """Add chunks up as LangChain does (``a + b``); values that cannot be added keep the last one."""
    final = chunks[0]
    for chunk in chunks[1:]:
        try:
            final = final + chunk
        except TypeError:
            final = chunk
    return final


def validate_window(mode: str, window_size: int, overlap: int) -> None:
    if mode not in ("buffered", "windowed"):
        raise InvalidPolicyError(f"stream_mode must be 'buffered' or 'windowed', got {mode!r}")
    if window_size < 1:
        raise InvalidPolicyError(f"window_size must be at least 1 character, got {window_size}")
    if overlap < 0:
        raise InvalidPolicyError(f"window_overlap must be 0 or more characters, got {overlap}")


class StreamWindow:
    """Holds streamed chunks and says when to check and what may be released. Runs no checks itself."""

    def __init__(self, mode: StreamMode = "buffered", window_size: int = 256, overlap: int = 64) -> None:
        validate_window(mode, window_size, overlap)
        self.mode = mode
        self.window_size = window_size
        self.overlap = overlap
        self.chunks: list[Any] = []
        self.text = ""  # text of the leading run of plain-text chunks
        self._ends: list[int] = []  # end offset of each plain-text chunk in ``text``
        self._textual = True
        self._released = 0
        self._checked = 0  # length of ``text`` at the last check

    def add(self, chunk: Any) -> bool:
        """Hold ``chunk``; True when a window check of :attr:`text` is due."""
        self.chunks.append(chunk)
        if self.mode == "buffered" or not self._textual:
            return False
        text = text_of(chunk)
        if text is None:
            self._textual = False
            return False
        self.text += text
        self._ends.append(len(self.text))
        return len(self.text) - self._checked >= self.window_size

    def release(self) -> list[Any]:
        """After a safe check of :attr:`text`: the chunks that may now be released."""
        self._checked = len(self.text)
        cut = len(self.text) - self.overlap
        out = []
        while self._released < len(self._ends) and self._ends[self._released] <= cut:
            out.append(self.chunks[self._released])
            self._released += 1
        return out

    @property
    def empty(self) -> bool:
        return not self.chunks

    @property
    def needs_final_check(self) -> bool:
        """False only when the last window check already covered the complete (plain-text) output."""
        all_text = self._textual and len(self._ends) == len(self.chunks)
        return not (self.mode == "windowed" and all_text and self._checked == len(self.text))

    def final(self) -> Any:
        """The complete output (chunks added up)."""
        return fold(self.chunks)

    def rest(self) -> list[Any]:
        """After a safe final check: everything not yet released."""
        out = self.chunks[self._released :]
        self._released = len(self.chunks)
        return out

    def sample(self) -> Any:
        return self.chunks[-1] if self.chunks else None
