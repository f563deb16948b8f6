"""Llama Guard 4 guardrails for LLM applications: a local classifier core with thin adapters.

Built with Llama. Llama 4 is licensed under the Llama 4 Community License,
Copyright © Meta Platforms, Inc. All Rights Reserved.
"""

from .core.categories import LLAMA_GUARD_4_CATEGORIES, category_name
from .core.conversation import Conversation, parse_conversation, render_tool_call
from .core.errors import (
    GuardClosedError,
    GuardError,
    GuardTimeoutError,
    InvalidConversationError,
    InvalidImageError,
    InvalidPolicyError,
    ModelNotFoundError,
    ModelOutputError,
    ReviewRequired,
    TooManyImagesError,
    UnsafeContentError,
)
from .core.images import ImageLimits
from .core.policy import CustomCategory, Policy
from .core.verdict import Verdict
from .guard import LlamaGuard
from .logs import enable_logging, log_verdicts

__version__ = "0.1.0"


def __getattr__(name: str):
    """``evaluate`` is imported on first use (it needs the ``[evaluate]`` extra only when it runs)."""
    if name == "evaluate":
        from .evaluation import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LLAMA_GUARD_4_CATEGORIES",
    "Conversation",
    "CustomCategory",
    "GuardClosedError",
    "GuardError",
    "GuardTimeoutError",
    "ImageLimits",
    "InvalidConversationError",
    "InvalidImageError",
    "InvalidPolicyError",
    "LlamaGuard",
    "ModelNotFoundError",
    "ModelOutputError",
    "Policy",
    "ReviewRequired",
    "TooManyImagesError",
    "UnsafeContentError",
    "Verdict",
    "category_name",
    "enable_logging",
    "evaluate",
    "log_verdicts",
    "parse_conversation",
    "render_tool_call",
]
