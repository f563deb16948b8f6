"""The in-process vLLM engine backend: the same requests as the server backend, through ``vllm.LLM``.

``vllm`` is imported only when an engine is built or called, so this module imports without it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ...core.prompt import Prompt
from ...core.scores import AnswerScores
from ..base import AnswerTokens, GuardBackend
from .protocol import (
    DEFAULT_TOP_LOGPROBS,
    VLLMResponseError,
    category_params,
    category_prompt,
    paired_scores,
    scoring_params,
    scoring_prompts,
)


def import_vllm() -> Any:
    """The ``vllm`` package, or an ImportError that says how to get it."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "the in-process vLLM engine needs the vllm package on a machine with a supported GPU: "
            "pip install vllm (or use LlamaGuard.from_vllm with a running `vllm serve`)"
        ) from exc
    return vllm


class VLLMEngineBackend(GuardBackend):
    """Runs Llama Guard 4 in a ``vllm.LLM`` engine in this process. Calls are serialized by a lock."""

    name = "vllm-engine"

    def __init__(self, llm: Any, tokens: AnswerTokens, *, top_logprobs: int = DEFAULT_TOP_LOGPROBS) -> None:
        self.llm = llm
        self.tokens = tokens
        self.top_logprobs = top_logprobs
        self._lock = threading.Lock()

    def _generate(self, prompts: list[list[int]], params: dict[str, Any]) -> list[Any]:
        sampling = import_vllm().SamplingParams(**params)
        with self._lock:
            return list(self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], sampling, use_tqdm=False))

    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        if not prompts:
            return []
        inputs = scoring_prompts(prompts, self.tokens)
        outputs = self._generate(inputs, scoring_params(self.top_logprobs))
        if len(outputs) != len(inputs):
            raise VLLMResponseError(f"vLLM returned {len(outputs)} outputs for {len(inputs)} prompts")
        return [_row_scores(outputs, n, self.tokens) for n in range(0, len(outputs), 2)]

    def category_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        ids = category_prompt(prompt, self.tokens, leading_blank=leading_blank)
        (out,) = self._generate([ids], category_params(self.tokens, max_new_tokens))
        return str(out.outputs[0].text)

    def close(self) -> None:
        self.llm = None


def _row_scores(outputs: list[Any], n: int, tokens: AnswerTokens) -> AnswerScores | Exception:
    """The scores of one prompt (outputs ``n`` and ``n + 1``), or the error of that prompt alone, in its place:
    one unreadable output fails its own row (the fail mode decides it), never the other rows of the batch."""
    try:
        (scores,) = paired_scores([_first_logprobs(outputs[n], n), _first_logprobs(outputs[n + 1], n + 1)], tokens)
    except Exception as exc:  # noqa: BLE001 - VLLMResponseError, or a malformed value: this row only
        return exc
    return scores


def _first_logprobs(output: Any, index: int) -> dict[int, float]:
    try:
        step = output.outputs[0].logprobs[0]
        return {int(token_id): float(lp.logprob) for token_id, lp in step.items()}
    except (AttributeError, IndexError, TypeError) as exc:
        raise VLLMResponseError(f"vLLM output {index} has no log probabilities for its first token") from exc
