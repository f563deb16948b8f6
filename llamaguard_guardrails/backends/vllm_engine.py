"""In-process vLLM engine backend, for users with a GPU and ``vllm`` installed on the same machine.

Same requests as :mod:`.vllm` (the HTTP backend), made through ``vllm.LLM`` directly: token-id
prompts (``{"prompt_token_ids": ids}``: no re-tokenization), ``max_tokens=1``, ``temperature=0`` and
the top-K log probabilities of ``ids`` and ``ids + ["\\n\\n"]``; a greedy category line only when
unsafe. The same :func:`scores_from_logprobs` turns them into :class:`AnswerScores`, so missing
tokens are bounded the same cautious way. ``vllm`` is imported only when an engine is built: this
module imports without it. Images are not supported (see :mod:`.vllm`); such prompts raise
:class:`VLLMImagesNotSupportedError` and get the policy's fail mode.

Not run in this project's CI (no GPU, no vllm wheel); ``scripts/vllm_parity.py --engine`` checks it
against the transformers backend on a GPU machine.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.prompt import EOT, Prompt
from .base import AnswerScores, AnswerTokens, GuardBackend
from .vllm import DEFAULT_TOP_LOGPROBS, VLLMResponseError, _refuse_images, scores_from_logprobs

if TYPE_CHECKING:
    from ..core.policy import Policy
    from ..guard import LlamaGuard


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "the in-process vLLM engine needs the vllm package on a machine with a supported GPU: "
            "pip install vllm (or use from_vllm with a running `vllm serve`)"
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

    def _generate(self, inputs: list[dict[str, Any]], params: Any) -> list[Any]:
        with self._lock:
            return list(self.llm.generate(inputs, params, use_tqdm=False))

    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        if not prompts:
            return []
        _refuse_images(prompts)
        vllm = _import_vllm()
        t = self.tokens
        inputs = []
        for prompt in prompts:
            inputs.append({"prompt_token_ids": list(prompt.input_ids)})
            inputs.append({"prompt_token_ids": [*prompt.input_ids, t.blank]})
        params = vllm.SamplingParams(max_tokens=1, temperature=0.0, logprobs=self.top_logprobs)
        outputs = self._generate(inputs, params)
        if len(outputs) != len(inputs):
            raise VLLMResponseError(f"vLLM returned {len(outputs)} outputs for {len(inputs)} prompts")
        tops = [_first_logprobs(out, n) for n, out in enumerate(outputs)]
        return [scores_from_logprobs(tops[2 * n], tops[2 * n + 1], t) for n in range(len(prompts))]

    def category_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        _refuse_images([prompt])
        vllm = _import_vllm()
        t = self.tokens
        forced = ([t.blank] if leading_blank else []) + [t.unsafe, t.newline]
        params = vllm.SamplingParams(
            max_tokens=max_new_tokens,
            temperature=0.0,
            stop=["\n"],
            stop_token_ids=[t.eot, t.newline],
            skip_special_tokens=True,
        )
        (out,) = self._generate([{"prompt_token_ids": [*prompt.input_ids, *forced]}], params)
        return str(out.outputs[0].text)

    def close(self) -> None:
        self.llm = None


def _first_logprobs(output: Any, index: int) -> dict[int, float]:
    try:
        step = output.outputs[0].logprobs[0]
        return {int(token_id): float(lp.logprob) for token_id, lp in step.items()}
    except (AttributeError, IndexError, TypeError) as exc:
        raise VLLMResponseError(f"vLLM output {index} has no log probabilities for its first token") from exc


def from_vllm_engine(
    model: str | os.PathLike[str],
    *,
    tokenizer: str | os.PathLike[str] | None = None,
    policy: Policy | None = None,
    top_logprobs: int = DEFAULT_TOP_LOGPROBS,
    **engine_kwargs: Any,
) -> LlamaGuard:
    """A :class:`LlamaGuard` on an in-process ``vllm.LLM(model, **engine_kwargs)``.

    ``engine_kwargs`` go to ``vllm.LLM`` (``tensor_parallel_size``, ``gpu_memory_utilization``,
    ``max_model_len``, ``dtype`` ...); ``max_logprobs`` is raised to ``top_logprobs`` when lower.
    """
    from ..guard import LlamaGuard, load_prompt_builder

    vllm = _import_vllm()
    source = tokenizer if tokenizer is not None else model
    builder = load_prompt_builder(source)
    tokens = AnswerTokens.from_tokenizer(builder.encode_text, builder.ids[EOT])
    engine_kwargs["max_logprobs"] = max(int(engine_kwargs.get("max_logprobs", 0)), top_logprobs)
    llm = vllm.LLM(model=str(Path(model)) if Path(model).exists() else str(model), **engine_kwargs)
    backend = VLLMEngineBackend(llm, tokens, top_logprobs=top_logprobs)
    return LlamaGuard(backend, builder, policy=policy, model_name=f"vllm-engine:{model}")


__all__ = ["VLLMEngineBackend", "from_vllm_engine"]
