"""Kept for ``llamaguard_guardrails.llama_stack.impl`` imports: see :mod:`.provider.impl`."""

from .provider.impl import LlamaGuardSafetyImpl

__all__ = ["LlamaGuardSafetyImpl"]
