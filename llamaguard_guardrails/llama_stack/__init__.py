"""Llama Stack adapter: Llama Guard 4 as a local safety provider, and a client-side guard.

Server side (llama-stack 0.7.x): add the provider to a run config with
``module: llamaguard_guardrails.llama_stack`` and ``provider_type: inline::llamaguard-guardrails``
(a ready config: :data:`RUN_CONFIG`). Llama Stack imports :mod:`.provider` for the spec and calls
:func:`get_provider_impl` here.

Client side (any Llama Stack server): :func:`guard_client` wraps a ``LlamaStackClient`` /
``AsyncLlamaStackClient`` so chat completions and responses are checked locally.

Importing this package needs neither llama-stack nor llama-stack-client; each part imports what it uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client_guard import AsyncGuardedLlamaStackClient, GuardedLlamaStackClient, guard_client
    from .config import LlamaGuardProviderConfig
    from .impl import LlamaGuardSafetyImpl

#: The run config shipped with the package (safety only, bound to 127.0.0.1).
RUN_CONFIG = Path(__file__).with_name("run.yaml")

_LAZY = {
    "LlamaGuardProviderConfig": "config",
    "LlamaGuardSafetyImpl": "impl",
    "GuardedLlamaStackClient": "client_guard",
    "AsyncGuardedLlamaStackClient": "client_guard",
    "guard_client": "client_guard",
}


async def get_provider_impl(config: LlamaGuardProviderConfig, deps: dict[Any, Any]) -> LlamaGuardSafetyImpl:
    """Called by Llama Stack for an inline provider: build the implementation and load the model."""
    from .config import LlamaGuardProviderConfig
    from .impl import LlamaGuardSafetyImpl
    from .provider import check_llama_stack_version

    check_llama_stack_version()
    if not isinstance(config, LlamaGuardProviderConfig):
        raise TypeError(f"expected LlamaGuardProviderConfig, got {type(config).__name__}")
    impl = LlamaGuardSafetyImpl(config)
    await impl.initialize()
    return impl


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RUN_CONFIG",
    "AsyncGuardedLlamaStackClient",
    "GuardedLlamaStackClient",
    "LlamaGuardProviderConfig",
    "LlamaGuardSafetyImpl",
    "get_provider_impl",
    "guard_client",
]
