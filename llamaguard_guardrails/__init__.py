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
    UnsafeContentError,
)
from .core.policy import CustomCategory, Policy
from .core.verdict import Verdict
from .guard import LlamaGuard
from .logs import enable_logging, log_sink

__version__ = "0.1.0"

__all__ = [
    "LLAMA_GUARD_4_CATEGORIES",
    "Conversation",
    "CustomCategory",
    "GuardClosedError",
    "GuardError",
    "GuardTimeoutError",
    "InvalidConversationError",
    "InvalidImageError",
    "InvalidPolicyError",
    "LlamaGuard",
    "ModelNotFoundError",
    "ModelOutputError",
    "Policy",
    "UnsafeContentError",
    "Verdict",
    "category_name",
    "enable_logging",
    "log_sink",
    "parse_conversation",
    "render_tool_call",
]
