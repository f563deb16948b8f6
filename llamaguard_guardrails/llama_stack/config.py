"""Kept for ``llamaguard_guardrails.llama_stack.config`` imports and ``config_class`` paths: see :mod:`.provider.config`."""

from .provider.config import LlamaGuardProviderConfig, shield_policy

__all__ = ["LlamaGuardProviderConfig", "shield_policy"]
