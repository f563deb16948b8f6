"""Typed errors. Every failure a caller can act on has its own class."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .verdict import Verdict

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def shown_name(value: object) -> str:
    """A caller's key, role, type or tool name, for an error message: quoted when it is a short plain name, else
    only described. Error messages can flow back into a conversation (a tool error a model reads), so they never
    carry free text from the input."""
    if isinstance(value, str) and _PLAIN_NAME.fullmatch(value):
        return repr(value)
    if isinstance(value, str):
        return f"<a {len(value)}-character name that is not a plain identifier>"
    return f"<a {type(value).__name__}>"


class GuardError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidConversationError(GuardError, ValueError):
    """The conversation cannot be classified as given; the message says what to fix."""


class InvalidImageError(InvalidConversationError):
    """An image part could not be read (a refused path or URL, bad base64, not an allowed image format)."""


class TooManyImagesError(InvalidImageError):
    """A conversation holds more images (frames of animations included) than the guard checks at once."""


class InvalidPolicyError(GuardError, ValueError):
    """A policy setting is out of range or names an unknown category."""


class ModelNotFoundError(GuardError, OSError):
    """The model weights are missing, gated or unreadable."""


class ModelOutputError(GuardError):
    """The model produced output Llama Guard 4 should never produce (empty, garbage, unknown codes)."""


class GuardTimeoutError(GuardError, TimeoutError):
    """A check did not finish before its deadline."""


class GuardClosedError(GuardError, RuntimeError):
    """The guard was closed (``LlamaGuard.close()``): it checks nothing more, and content must not pass."""


class UnsafeContentError(BaseException):
    """Raised by adapters (and ``LlamaGuard.check``) when content is blocked.

    ``verdict`` holds the full :class:`Verdict`; ``stage`` says which check blocked
    (``"input"``, ``"output"``, ``"tool_call"``, ``"tool_result"`` ...).

    **A block is final**, so this is a ``BaseException``, not an ``Exception`` (nor a :class:`GuardError`):
    whatever recovers from ``Exception`` would otherwise turn a block into a detour and send the blocked
    content on unchecked: ``Runnable.with_fallbacks`` (the fallback gets the input), ``with_retry``,
    LangGraph's ``ToolNode(handle_tool_errors=True)`` (the model reads the error and goes on), any
    ``except Exception``. None of them can be fixed from here, and each would need its own patch; a
    ``BaseException`` passes through all of them, as pytest's ``OutcomeException``, asyncio's
    ``CancelledError`` (since Python 3.8) and trio's ``Cancelled`` do for the same reason. Code that
    propagates everything (``except BaseException: ...; raise``, thread pools, ``asyncio`` tasks) keeps
    working. Catch it by name: ``except UnsafeContentError``; ``except GuardError`` and ``except Exception``
    do not catch it.
    """

    def __init__(self, verdict: Verdict, stage: str | None = None, message: str | None = None):
        self.verdict = verdict
        self.stage = stage
        where = f" at {stage}" if stage else ""
        if message is None:
            if verdict.error:  # the error's code only: this message may reach a model (a tool error it reads)
                message = f"blocked{where}: the guard could not decide ({verdict.error_code or 'GuardError'})"
            else:
                cats = ", ".join(f"{code} {name}" for code, name in zip(verdict.categories, verdict.category_names))
                if not cats and getattr(verdict, "out_of_depth", None):  # blocked by Policy(out_of_depth="block")
                    cats = "out of its depth: " + "; ".join(verdict.out_of_depth)
                message = (
                    f"unsafe content{where}: {cats or 'no category given'} (p_unsafe={verdict.unsafe_probability:.3f})"
                )
        super().__init__(message)


class ReviewRequired(UnsafeContentError):
    """Raised (``on_block="raise"``) for a verdict that needs a human (``verdict.outcome == "review"``: the
    policy's grey zone, or an out-of-depth verdict under ``out_of_depth="review"``) when no ``on_review`` hook
    approved it. A subclass of :class:`UnsafeContentError`: code that handles blocks holds it back too."""

    def __init__(self, verdict: Verdict, stage: str | None = None, message: str | None = None):
        where = f" at {stage}" if stage else ""
        super().__init__(
            verdict,
            stage,
            message or f"needs review{where}: {verdict.summary()}; no reviewer approved it (pass on_review=...)",
        )
