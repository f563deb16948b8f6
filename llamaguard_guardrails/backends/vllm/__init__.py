"""Llama Guard 4 served by vLLM: a server (:mod:`.http`) or an in-process engine (:mod:`.engine`).

The prompt is built here exactly as for the transformers backend and sent as token ids; only the
forward pass runs in vLLM (docs/vllm.md). Build a guard with ``LlamaGuard.from_vllm(url)`` or
``LlamaGuard.from_vllm_engine(model)``.
"""

from __future__ import annotations

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
