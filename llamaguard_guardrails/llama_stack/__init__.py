"""Llama Stack adapter: Llama Guard 4 as a local safety provider.

Server side (llama-stack 0.7.x, :mod:`.provider`): add the provider to a run config with
``module: llamaguard_guardrails.llama_stack`` and ``provider_type: inline::llamaguard-guardrails``
(a ready config: :data:`RUN_CONFIG`). Llama Stack imports :mod:`.provider` for the spec and the factory.

The client-side guard (any OpenAI-compatible client, ``LlamaStackClient`` included) is
:func:`llamaguard_guardrails.client.guard_client`.

Importing this package does not need llama-stack; each part imports what it uses.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .provider import get_provider_impl

if TYPE_CHECKING:
    from .provider.config import LlamaGuardProviderConfig
    from .provider.impl import LlamaGuardSafetyImpl

#: The run config shipped with the package (safety only, bound to 127.0.0.1).
RUN_CONFIG = Path(__file__).with_name("run.yaml")

_LAZY = {
    "LlamaGuardProviderConfig": "provider.config",
    "LlamaGuardSafetyImpl": "provider.impl",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RUN_CONFIG",
    "LlamaGuardProviderConfig",
    "LlamaGuardSafetyImpl",
    "get_provider_impl",
]
