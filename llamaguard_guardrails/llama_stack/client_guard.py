"""Kept for ``llamaguard_guardrails.llama_stack.client_guard`` imports: see :mod:`.client`."""

from .client import DEFAULT_REFUSAL, AsyncGuardedLlamaStackClient, GuardedLlamaStackClient, guard_client

__all__ = ["DEFAULT_REFUSAL", "AsyncGuardedLlamaStackClient", "GuardedLlamaStackClient", "guard_client"]
