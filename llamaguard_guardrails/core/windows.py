"""Windowed release of streamed text: when to check, and which chunks a safe check lets go. Pure arithmetic.

Every adapter that streams (LangChain runnables, the client-side guard) holds the chunks of a text, checks the
text so far whenever ``window_size`` new characters arrived, and after a safe verdict releases the chunks that
end at least ``overlap`` characters before the checked length: text that straddles a window boundary is always
checked whole (with up to ``overlap`` characters after it) before any of it is released.

>>> window = TextWindow(window_size=4, overlap=2)
>>> window.add("ab"), window.add("cd")
(False, True)
>>> window.release(window.length)  # "abcd" was checked safe: "ab" ends 2 characters before its end
1
>>> window.add("ef")  # 2 new characters: no check due yet
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .errors import InvalidPolicyError

StreamMode = Literal["buffered", "windowed"]
"""``buffered``: a stream is released once checked whole; ``windowed``: text is released window by window."""


def validate_window(mode: str, window_size: int, overlap: int) -> None:
    """Raise :class:`InvalidPolicyError` on an unknown mode, a window under 1 or a negative overlap."""
    if mode not in ("buffered", "windowed"):
        raise InvalidPolicyError(f"stream_mode must be 'buffered' or 'windowed', got {mode!r}")
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
        raise InvalidPolicyError(f"window_size must be an int of at least 1 character, got {window_size!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise InvalidPolicyError(f"window_overlap must be an int of 0 or more characters, got {overlap!r}")


def window_due(length: int, checked: int, window_size: int) -> bool:
    """Whether ``window_size`` characters arrived since the last check (at ``checked``; -1: never)."""
    return length - max(checked, 0) >= window_size


def released_through(ends: list[int], checked: int, overlap: int) -> int:
    """How many chunks (ending at ``ends``, in order) a safe check of the first ``checked`` characters releases."""
    cut = checked - overlap
    count = 0
    while count < len(ends) and ends[count] <= cut:
        count += 1
    return count


@dataclass
class TextWindow:
    """The text of consecutive chunks: its length, where each chunk ends, and the last checked length."""

    window_size: int
    overlap: int
    ends: list[int] = field(default_factory=list)
    checked: int = -1

    @property
    def length(self) -> int:
        return self.ends[-1] if self.ends else 0

    def add(self, text: str) -> bool:
        """Add a chunk's text; ``True`` when a check of the text so far is due."""
        self.ends.append(self.length + len(text))
        return window_due(self.length, self.checked, self.window_size)

    def release(self, checked: int) -> int:
        """After a safe check of the first ``checked`` characters: how many chunks may be released."""
        self.checked = max(self.checked, checked)
        return released_through(self.ends, checked, self.overlap)
