"""Building a :class:`~llamaguard_guardrails.LlamaGuard`: weights in this process, a vLLM server or engine.

Each ``from_*`` function takes the guard class first: ``LlamaGuard`` binds them as its classmethods
(call ``LlamaGuard.from_pretrained(...)``), so this module never imports the facade.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .backends.base import AnswerTokens
from .core.conversation import parse_conversation
from .core.policy import DEFAULT_POLICY, Policy
from .core.prompt import EOT, PromptBuilder

log = logging.getLogger("llamaguard_guardrails")

DEFAULT_MODEL = "meta-llama/Llama-Guard-4-12B"
#: A checkpoint folder holding ``<marker>.json`` is the random-weight test model (its verdicts are meaningless).
TEST_MODEL_MARKER = "llamaguard_guardrails_test_model"


class _Guard(Protocol):
    is_test_model: bool
    prompt_parity: bool | None


G = TypeVar("G", bound=_Guard)


def from_pretrained(
    cls: type[G],
    model_id_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: Any = None,
    quantization: str | None = None,
    policy: Policy | None = None,
    local_files_only: bool | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    prefix_caching: bool | None = None,
    cache_conversations: bool = True,
    prefix_cache_mb: float = 512,
    compile: str | None = None,
    warmup: bool = False,
    **guard_options: Any,
) -> G:
    """Load Llama Guard 4 (or a test model) from a local folder, the HF cache or the Hub.

    ``device`` defaults to CUDA when available; ``dtype`` to bf16 on GPU and float32 on CPU;
    ``quantization`` may be ``"8bit"`` or ``"4bit"`` (needs the ``quantization`` extra).
    A missing or gated model raises :class:`ModelNotFoundError` saying how to get it.
    ``prefix_caching`` (default: on for CPU, off for GPU, where a short check is launch-bound)
    reuses the KV cache of the policy part of the prompt and, with ``cache_conversations``, of the
    conversation so far (at most ``prefix_cache_mb`` megabytes; ``cache_conversations=False`` makes
    repeated checks bit-identical). ``compile="cuda_graphs"`` runs text checks on static buffers captured
    in CUDA graphs on a GPU (a torch.compile mode such as ``"reduce-overhead"`` compiles them instead);
    ``warmup=True`` captures/compiles the usual shapes at load (time in ``backend.warmup_s``), not at the
    first checks. ``guard_options`` go to the constructor (``max_prompt_tokens``,
    ``on_verdict``, ``cache_size``, ``micro_batching``, ``max_batch``, ``max_wait_ms``, ``batch_size``,
    ``allow_local_image_paths``: open image path strings and ``file://`` URLs, off by default because
    message strings may come from clients; a ``pathlib.Path`` is always opened).
    """
    from .backends.transformers import TransformersBackend, load_model, load_processor, resolve_model_path

    path = resolve_model_path(
        model_id_or_path, local_files_only=local_files_only, revision=revision, token=token, cache_dir=cache_dir
    )
    tokenizer, processor = load_processor(path)
    builder = _prompt_builder(tokenizer, processor)
    model = load_model(path, device=device, dtype=dtype, quantization=quantization)
    tokens = answer_tokens(builder)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else builder.ids[EOT]
    backend = TransformersBackend(
        model,
        tokens,
        pad,
        builder.decode,
        prefix_caching=prefix_caching,
        cache_conversations=cache_conversations,
        prefix_cache_mb=prefix_cache_mb,
        compile=compile,
    )
    guard = cls(backend, builder, policy=policy, model_name=str(model_id_or_path), **guard_options)
    _mark_test_model(guard, path)
    guard.prompt_parity = check_prompt_parity(builder, processor)
    if warmup:
        backend.warmup(guard.build_prompts)
    return guard


def from_vllm(
    cls: type[G],
    base_url: str,
    model: str = DEFAULT_MODEL,
    *,
    tokenizer: str | os.PathLike[str] | None = None,
    verify: bool = True,
    policy: Policy | None = None,
    max_prompt_tokens: int | None = None,
    **options: Any,
) -> G:
    """A guard whose forward pass runs on a vLLM server; the prompt, policy and verdict stay here.

    ``model``: the served model name. ``tokenizer``: a local folder or Hugging Face id holding the
    checkpoint's tokenizer and processor (no weights are loaded); defaults to ``model``. ``verify``
    checks at once that the server serves ``model`` with the same tokenizer. ``options`` are the
    connection options of :class:`~llamaguard_guardrails.backends.vllm.VLLMBackend` (``timeout``,
    ``max_retries``, ``api_key`` ...) and the guard constructor's (``cache_size``, ``batch_size`` ...).
    Image conversations get the fail mode (``/v1/completions`` cannot carry the exact image prompt).

    >>> guard = LlamaGuard.from_vllm("http://127.0.0.1:8000", model="meta-llama/Llama-Guard-4-12B")  # doctest: +SKIP
    """
    from .backends.vllm import VLLMBackend, answer_token_strings

    source = tokenizer if tokenizer is not None else model
    builder = load_prompt_builder(source)
    tokens = answer_tokens(builder)
    connection = _pop_keyword_only(options, VLLMBackend)
    strings = answer_token_strings(builder.decode, tokens)
    backend = VLLMBackend(base_url, model, tokens, token_strings=strings, **connection)
    if verify:
        try:
            backend.verify()
        except BaseException:
            backend.close()
            raise
    if max_prompt_tokens is not None:
        options["max_prompt_tokens"] = max_prompt_tokens
    guard = cls(backend, builder, policy=policy, model_name=f"vllm:{model}", **options)
    _mark_test_model(guard, Path(source))
    return guard


def from_vllm_engine(
    cls: type[G],
    model: str | os.PathLike[str],
    *,
    tokenizer: str | os.PathLike[str] | None = None,
    policy: Policy | None = None,
    top_logprobs: int | None = None,
    **engine_kwargs: Any,
) -> G:
    """A guard on an in-process ``vllm.LLM(model, **engine_kwargs)`` (needs ``vllm`` and a supported GPU).

    ``engine_kwargs`` go to ``vllm.LLM`` (``tensor_parallel_size``, ``gpu_memory_utilization``,
    ``max_model_len``, ``dtype`` ...); ``max_logprobs`` is raised to ``top_logprobs`` when lower.
    """
    from .backends.vllm import DEFAULT_TOP_LOGPROBS, VLLMEngineBackend, import_vllm

    vllm = import_vllm()
    source = tokenizer if tokenizer is not None else model
    builder = load_prompt_builder(source)
    top_logprobs = top_logprobs or DEFAULT_TOP_LOGPROBS
    engine_kwargs["max_logprobs"] = max(int(engine_kwargs.get("max_logprobs", 0)), top_logprobs)
    llm = vllm.LLM(model=str(Path(model)) if Path(model).exists() else str(model), **engine_kwargs)
    backend = VLLMEngineBackend(llm, answer_tokens(builder), top_logprobs=top_logprobs)
    guard = cls(backend, builder, policy=policy, model_name=f"vllm-engine:{model}")
    _mark_test_model(guard, Path(source))
    return guard


def from_server(cls: type[Any], url: str, *, api_key: str | None = None, **options: Any) -> Any:
    """A guard on a ``llamaguard-guardrails serve`` server: a ``cls`` whose checks are
    :class:`~llamaguard_guardrails.serve.client.RemoteGuard`'s (the server runs the whole check and returns its
    verdict; no weights or tokenizer here). Every adapter takes it in place of a local ``LlamaGuard``. ``options``: ``policy``, ``on_verdict``, ``timeout_s``, ``max_retries``,
    ``batch_size``, ``verify``, ``model``.

    >>> guard = LlamaGuard.from_server("http://127.0.0.1:8000", api_key="...")  # doctest: +SKIP
    """
    from .serve.client import remote_class

    return remote_class(cls)(url, api_key=api_key, **options)


def load_prompt_builder(model_id_or_path: str | os.PathLike[str], **kwargs: Any) -> PromptBuilder:
    """Only the tokenizer and image processor of a checkpoint: enough to build prompts, no weights."""
    from .backends.transformers import load_processor, resolve_model_path

    tokenizer, processor = load_processor(resolve_model_path(model_id_or_path, **kwargs))
    return _prompt_builder(tokenizer, processor)


def answer_tokens(builder: PromptBuilder) -> AnswerTokens:
    """The ids of the tokens the model answers with, in ``builder``'s tokenizer."""
    return AnswerTokens.from_tokenizer(builder.encode_text, builder.ids[EOT])


def check_prompt_parity(builder: PromptBuilder, processor: Any) -> bool | None:
    """Compare our ids with the checkpoint's own chat template on a canonical conversation."""
    template = getattr(processor, "chat_template", None)
    if not template:
        return None
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "How do I make a bomb?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "I cannot help you with that."}]},
    ]
    try:
        official = processor.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        if official and isinstance(official[0], list):
            official = official[0]
    except Exception as exc:  # noqa: BLE001 - a template we cannot run is reported, not fatal
        log.warning("could not render the checkpoint's chat template for a parity check: %s", exc)
        return None
    ours = builder.build(parse_conversation(messages), DEFAULT_POLICY)[0].input_ids
    if list(ours) != list(official):
        log.warning(
            "the checkpoint's chat template renders a different prompt than llamaguard-guardrails; "
            "verdicts use the documented Llama Guard 4 prompt"
        )
        return False
    return True


def _prompt_builder(tokenizer: Any, processor: Any) -> PromptBuilder:
    return PromptBuilder(
        tokenizer, getattr(processor, "image_processor", None), patch_size=getattr(processor, "patch_size", 14)
    )


def _mark_test_model(guard: _Guard, path: Path) -> None:
    guard.is_test_model = (path / f"{TEST_MODEL_MARKER}.json").exists()
    if guard.is_test_model:
        log.warning("%s is a random-weight TEST model: its verdicts are meaningless", path)


def _pop_keyword_only(options: dict[str, Any], target: Callable[..., Any]) -> dict[str, Any]:
    """Take the keyword-only parameters of ``target`` out of ``options``."""
    names = [p.name for p in inspect.signature(target).parameters.values() if p.kind is p.KEYWORD_ONLY]
    return {name: options.pop(name) for name in names if name in options}


__all__ = [
    "DEFAULT_MODEL",
    "TEST_MODEL_MARKER",
    "answer_tokens",
    "check_prompt_parity",
    "from_pretrained",
    "from_server",
    "from_vllm",
    "from_vllm_engine",
    "load_prompt_builder",
]
