"""Llama Guard 4 served by vLLM: a server (:mod:`.http`) or an in-process engine (:mod:`.engine`).

The prompt is built here exactly as for the transformers backend and sent as token ids; only the
forward pass runs in vLLM (docs/vllm.md). Build a guard with ``LlamaGuard.from_vllm(url)`` or
``LlamaGuard.from_vllm_engine(model)``.
"""

from __future__ import annotations

import warnings
from typing import Any

from .engine import VLLMEngineBackend, import_vllm
from .http import VLLMBackend
from .protocol import (
    DEFAULT_TOP_LOGPROBS,
    VLLMConnectionError,
    VLLMError,
    VLLMHTTPError,
    VLLMImagesNotSupportedError,
    VLLMResponseError,
    answer_token_strings,
    scores_from_logprobs,
    token_logprobs,
)


def legacy_factory(name: str) -> Any:
    """``LlamaGuard.<name>`` for the old ``backends.vllm.from_vllm`` / ``backends.vllm_engine.from_vllm_engine``."""
    warnings.warn(
        f"importing {name} from llamaguard_guardrails.backends is deprecated: use LlamaGuard.{name}",
        DeprecationWarning,
        stacklevel=3,
    )
    from ...guard import LlamaGuard

    return getattr(LlamaGuard, name)


def __getattr__(name: str) -> Any:
    if name == "from_vllm":
        return legacy_factory(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_TOP_LOGPROBS",
    "VLLMBackend",
    "VLLMConnectionError",
    "VLLMEngineBackend",
    "VLLMError",
    "VLLMHTTPError",
    "VLLMImagesNotSupportedError",
    "VLLMResponseError",
    "answer_token_strings",
    "import_vllm",
    "scores_from_logprobs",
    "token_logprobs",
]
