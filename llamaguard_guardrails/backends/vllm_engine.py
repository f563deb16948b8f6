"""The old home of the in-process vLLM engine backend: see :mod:`llamaguard_guardrails.backends.vllm.engine`."""

from __future__ import annotations

from typing import Any

from .vllm import VLLMEngineBackend, legacy_factory


def __getattr__(name: str) -> Any:
    if name == "from_vllm_engine":
        return legacy_factory(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["VLLMEngineBackend"]
