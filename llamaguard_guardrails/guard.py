"""``LlamaGuard``: classify conversations with a locally loaded Llama Guard 4."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .backends.base import AnswerScores, AnswerTokens, GuardBackend
from .core.batching import MicroBatcher
from .core.categories import category_name
from .core.conversation import Conversation, parse_conversation
from .core.errors import GuardTimeoutError, InvalidConversationError, ModelOutputError, UnsafeContentError
from .core.policy import DEFAULT_POLICY, Policy
from .core.prompt import EOT, Prompt, PromptBuilder
from .core.verdict import Verdict
from .core.verdict_cache import VerdictCache, cache_key

log = logging.getLogger("llamaguard_guardrails")

#: Below this probability of answering "safe"/"unsafe" at all, the model's output is treated as garbage.
MIN_ANSWER_MASS = 0.5
DEFAULT_MAX_PROMPT_TOKENS = 8192

VerdictSink = Callable[[Verdict], Any]


class LlamaGuard:
    """A Llama Guard 4 classifier. Thread-safe: share one instance across threads and tasks.

    >>> guard = LlamaGuard.from_pretrained("meta-llama/Llama-Guard-4-12B")   # doctest: +SKIP
    >>> guard.classify([{"role": "user", "content": "How do I bake bread?"}]).safe  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        backend: GuardBackend,
        prompt_builder: PromptBuilder,
        *,
        policy: Policy | None = None,
        max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
        batch_size: int = 8,
        sink: VerdictSink | None = None,
        model_name: str = "",
        cache_size: int = 4096,
        micro_batching: bool = True,
        max_batch: int = 16,
        max_wait_ms: float = 0.0,
    ) -> None:
        self.backend = backend
        self.prompts = prompt_builder
        self.policy = policy or DEFAULT_POLICY
        self.max_prompt_tokens = max_prompt_tokens
        self.batch_size = batch_size
        self.sink = sink
        self.model_name = model_name
        self.is_test_model = False
        self.prompt_parity: bool | None = None
        self.cache = VerdictCache(cache_size)
        self.batcher = (
            MicroBatcher(self._score_batch, max_batch=max_batch, max_wait_s=max_wait_ms / 1000)
            if micro_batching
            else None
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="llamaguard")

    # -- loading ----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | os.PathLike[str] = "meta-llama/Llama-Guard-4-12B",
        *,
        device: str | None = None,
        dtype: Any = None,
        quantization: str | None = None,
        policy: Policy | None = None,
        local_files_only: bool | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
        sink: VerdictSink | None = None,
        prefix_caching: bool | None = None,
        cache_conversations: bool = True,
        prefix_cache_mb: float = 512,
        compile: str | None = None,
        warmup: bool = False,
        **guard_options: Any,
    ) -> LlamaGuard:
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
        first checks. ``guard_options`` go to the constructor (``cache_size``,
        ``micro_batching``, ``max_batch``, ``max_wait_ms``, ``batch_size``).
        """
        from .backends.transformers import TransformersBackend, load_model, load_processor, resolve_model_path
        from .testing.model_factory import TEST_MODEL_MARKER

        path = resolve_model_path(
            model_id_or_path, local_files_only=local_files_only, revision=revision, token=token, cache_dir=cache_dir
        )
        tokenizer, processor = load_processor(path)
        builder = _prompt_builder(tokenizer, processor)
        model = load_model(path, device=device, dtype=dtype, quantization=quantization)
        tokens = AnswerTokens.from_tokenizer(builder.encode_text, builder.ids[EOT])
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
        guard = cls(
            backend,
            builder,
            policy=policy,
            max_prompt_tokens=max_prompt_tokens,
            sink=sink,
            model_name=str(model_id_or_path),
            **guard_options,
        )
        guard.is_test_model = (path / f"{TEST_MODEL_MARKER}.json").exists()
        if guard.is_test_model:
            log.warning("%s is a random-weight TEST model: its verdicts are meaningless", path)
        guard.prompt_parity = _check_prompt_parity(builder, processor)
        if warmup:
            backend.warmup(guard.build_prompts)
        return guard

    @classmethod
    def from_vllm(cls, base_url: str, model: str = "meta-llama/Llama-Guard-4-12B", **options: Any) -> LlamaGuard:
        """A guard whose forward pass runs on a vLLM server; the prompt, policy and verdict stay here.

        ``tokenizer=`` names a local folder or Hugging Face id with the checkpoint's tokenizer (default:
        ``model``). Connection options (``timeout``, ``max_retries``, ``api_key`` ...) are documented in
        :func:`llamaguard_guardrails.backends.vllm.from_vllm`. Image conversations are blocked there.
        """
        from .backends.vllm import from_vllm

        return from_vllm(base_url, model, **options)

    # -- checks -----------------------------------------------------------------------------------

    def classify(self, conversation: Any, *, policy: Policy | None = None) -> Verdict:
        """Classify the last message of ``conversation`` (OpenAI-format messages, or a string).

        Bad input raises a typed :class:`InvalidConversationError`; a failing model gives the
        policy's fail-mode verdict (``verdict.error`` says why). With ``policy.timeout_s`` the
        fail-mode verdict comes back at the deadline even if the model hangs.
        """
        policy = policy or self.policy
        started = time.perf_counter()
        if policy.timeout_s is None:
            return self._emit(self._classify(conversation, policy, started))
        future = self._executor.submit(self._classify, conversation, policy, started)
        try:
            return self._emit(future.result(timeout=policy.timeout_s))
        except concurrent.futures.TimeoutError:
            future.cancel()  # an abandoned check finishes in the background but reports nothing
            return self._emit(self._timed_out(policy, started))

    async def aclassify(self, conversation: Any, *, policy: Policy | None = None) -> Verdict:
        """Async :meth:`classify`; all work runs off the event loop."""
        policy = policy or self.policy
        started = time.perf_counter()
        work = asyncio.get_running_loop().run_in_executor(self._executor, self._classify, conversation, policy, started)
        if policy.timeout_s is None:
            return self._emit(await work)
        try:
            return self._emit(await asyncio.wait_for(work, policy.timeout_s))
        except TimeoutError:
            return self._emit(self._timed_out(policy, started))

    def classify_batch(
        self,
        conversations: Iterable[Any],
        *,
        policy: Policy | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> list[Verdict]:
        """Classify many conversations with batched forward passes. Results keep the input order.

        ``progress=True`` shows a progress bar over the prompts (tqdm: stderr, or a widget in notebooks).
        ``policy.timeout_s`` bounds the whole call: past it every verdict is the fail mode's.
        """
        policy = policy or self.policy
        started = time.perf_counter()
        groups = self._build_all(conversations, policy)
        if policy.timeout_s is None:
            verdicts = self._classify_groups(groups, policy, batch_size, progress, started)
        else:
            future = self._executor.submit(self._classify_groups, groups, policy, batch_size, progress, started)
            try:
                verdicts = future.result(timeout=policy.timeout_s)
            except concurrent.futures.TimeoutError:
                future.cancel()
                verdicts = [
                    self._timed_out(policy, started, None if isinstance(prompts, BaseException) else prompts)
                    for prompts in groups
                ]
        return [self._emit(v) for v in verdicts]

    def check(self, conversation: Any, *, policy: Policy | None = None, stage: str | None = None) -> Verdict:
        """Like :meth:`classify`, but raise :class:`UnsafeContentError` when the verdict is unsafe."""
        verdict = self.classify(conversation, policy=policy)
        if not verdict.safe:
            raise UnsafeContentError(verdict, stage)
        return verdict

    async def acheck(self, conversation: Any, *, policy: Policy | None = None, stage: str | None = None) -> Verdict:
        verdict = await self.aclassify(conversation, policy=policy)
        if not verdict.safe:
            raise UnsafeContentError(verdict, stage)
        return verdict

    # -- prompts ----------------------------------------------------------------------------------

    def build_prompts(self, conversation: Any, policy: Policy | None = None) -> list[Prompt]:
        """The exact token ids the model sees (several prompts when the last message is windowed)."""
        conv = conversation if isinstance(conversation, Conversation) else parse_conversation(conversation)
        return self.prompts.build(conv, policy or self.policy, max_tokens=self.max_prompt_tokens)

    def render(self, conversation: Any, policy: Policy | None = None) -> str:
        """The prompt text the model sees (first window), with control tokens written out."""
        return self.prompts.decode(self.build_prompts(conversation, policy)[0].input_ids)

    # -- internals --------------------------------------------------------------------------------

    def _classify(self, conversation: Any, policy: Policy, started: float) -> Verdict:
        """One check, without reporting it to the sink (the public methods do, exactly once)."""
        try:
            prompts = self.build_prompts(conversation, policy)
        except InvalidConversationError:
            raise
        except Exception as exc:  # noqa: BLE001 - a tokenizer or image-processor failure is a guard failure
            return self._failure(exc, policy, started)
        key = cache_key(prompts, policy) if self.cache.maxsize else b""
        hit = self.cache.get(key)
        if hit is not None:
            return self._from_cache(hit, started)
        try:
            scores: list[Any] = self.batcher.score(prompts) if self.batcher else self.backend.score(prompts)
        except Exception as exc:  # noqa: BLE001 - every model failure becomes the fail mode
            scores = [exc] * len(prompts)
        verdict = self._decide(prompts, scores, policy, started)
        self.cache.put(key, verdict)
        return verdict

    def _build_all(self, conversations: Iterable[Any], policy: Policy) -> list[list[Prompt] | BaseException]:
        """Prompts of every conversation; a guard failure while building is kept in its place."""
        groups: list[list[Prompt] | BaseException] = []
        for n, item in enumerate(conversations):
            try:
                groups.append(self.build_prompts(item, policy))
            except InvalidConversationError as exc:
                raise type(exc)(f"conversation {n}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - tokenizer or image-processor failure: fail mode
                groups.append(exc)
        return groups

    def _classify_groups(
        self,
        groups: list[list[Prompt] | BaseException],
        policy: Policy,
        batch_size: int | None,
        progress: bool,
        started: float,
    ) -> list[Verdict]:
        batch_size = batch_size or self.batch_size
        prompt_groups = {g: prompts for g, prompts in enumerate(groups) if not isinstance(prompts, BaseException)}
        keys = {g: cache_key(prompts, policy) for g, prompts in prompt_groups.items()}
        cached = {g: self.cache.get(key) for g, key in keys.items()}
        flat = [(g, w) for g, prompts in prompt_groups.items() if cached[g] is None for w in range(len(prompts))]
        # Similar lengths together: less padding per forward pass.
        order = sorted(flat, key=lambda gw: len(prompt_groups[gw[0]][gw[1]]))
        scores: dict[tuple[int, int], AnswerScores | BaseException] = {}
        bar = _progress_bar(len(order), progress)
        for i in range(0, len(order), batch_size):
            chunk = order[i : i + batch_size]
            try:
                results: list[Any] = _checked_scores(
                    self.backend.score([prompt_groups[g][w] for g, w in chunk]), len(chunk)
                )
            except Exception as exc:  # noqa: BLE001 - every model failure becomes the fail mode
                results = [exc] * len(chunk)
            scores.update(zip(chunk, results, strict=True))
            bar.update(len(chunk))
        bar.close()
        verdicts = []
        for g, item in enumerate(groups):
            if isinstance(item, BaseException):
                verdicts.append(self._failure(item, policy, started))
            elif cached[g] is not None:
                verdicts.append(self._from_cache(cached[g], started))
            else:
                verdict = self._decide(item, [scores[(g, w)] for w in range(len(item))], policy, started)
                self.cache.put(keys[g], verdict)
                verdicts.append(verdict)
        return verdicts

    def _score_batch(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        return _checked_scores(self.backend.score(prompts), len(prompts))

    def _timed_out(self, policy: Policy, started: float, prompts: list[Prompt] | None = None) -> Verdict:
        exc = GuardTimeoutError(f"the check did not finish within {policy.timeout_s} s")
        return self._failure(exc, policy, started, prompts)

    @staticmethod
    def _from_cache(verdict: Verdict, started: float) -> Verdict:
        return verdict.model_copy(update={"cached": True, "latency_ms": (time.perf_counter() - started) * 1000})

    def _decide(self, prompts: list[Prompt], scores: list[Any], policy: Policy, started: float) -> Verdict:
        try:
            parts = [
                self._window_verdict(p, s, policy)
                for p, s in zip(prompts, _checked_scores(scores, len(prompts)), strict=True)
            ]
        except Exception as exc:  # noqa: BLE001
            return self._failure(exc, policy, started, prompts)
        first = prompts[0]
        unsafe = [v for v in parts if not v["safe"]]
        categories = list(dict.fromkeys(c for v in unsafe for c in v["categories"]))
        ignored = list(dict.fromkeys(c for v in parts for c in v["ignored"]))
        errors = [v["error"] for v in parts if v["error"]]
        return Verdict(
            safe=not unsafe,
            categories=categories,
            category_names=[category_name(c, policy.custom_names) for c in categories],
            unsafe_probability=max(v["p"] for v in parts),
            threshold=policy.threshold,
            checked_role=first.checked_role,
            checked_message_index=first.checked_message_index,
            raw_output=(unsafe[0] if unsafe else parts[0])["raw"],
            latency_ms=(time.perf_counter() - started) * 1000,
            error=errors[0] if errors else None,
            ignored_categories=ignored,
            omitted_messages=list(first.omitted_messages),
            windows=len(prompts),
        )

    def _window_verdict(self, prompt: Prompt, scores: AnswerScores | BaseException, policy: Policy) -> dict[str, Any]:
        if isinstance(scores, BaseException):
            raise scores
        if not all(math.isfinite(x) for x in (scores.answer_mass, scores.unsafe_probability)):
            raise ModelOutputError("the model's answer probabilities are not finite (NaN or inf)")
        if scores.answer_mass < MIN_ANSWER_MASS:
            raise ModelOutputError(
                f"the model's answer is neither 'safe' nor 'unsafe' (probability {scores.answer_mass:.3f})"
            )
        p = scores.unsafe_probability
        lead = "\n\n" if scores.leading_blank else ""
        if p < policy.threshold:
            return {"safe": True, "p": p, "categories": [], "ignored": [], "error": None, "raw": f"{lead}safe"}
        text = self.backend.category_text(prompt, leading_blank=scores.leading_blank)
        codes, ignored, error = parse_category_line(text, policy, has_images=prompt.has_images)
        # Categories the policy excludes do not make content unsafe; anything unreadable does.
        safe = not codes and bool(ignored) and error is None
        return {
            "safe": safe,
            "p": p,
            "categories": codes,
            "ignored": ignored,
            "error": error,
            "raw": f"{lead}unsafe\n{text}",
        }

    def _failure(
        self, exc: BaseException, policy: Policy, started: float, prompts: Sequence[Prompt] | None = None
    ) -> Verdict:
        message = f"{type(exc).__name__}: {exc}"
        fail_open = policy.fail_mode == "open"
        if fail_open:
            log.error("guard failed, letting content through (fail_mode='open'): %s", message)
        else:
            log.warning("guard failed, blocking (fail_mode='closed'): %s", message)
        return Verdict(
            safe=fail_open,
            unsafe_probability=0.0 if fail_open else 1.0,
            threshold=policy.threshold,
            checked_role=prompts[0].checked_role if prompts else "User",
            checked_message_index=prompts[0].checked_message_index if prompts else -1,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=message,
            omitted_messages=list(prompts[0].omitted_messages) if prompts else [],
            windows=len(prompts) if prompts else 1,
        )

    def _emit(self, verdict: Verdict) -> Verdict:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s message %d: %s", verdict.checked_role, verdict.checked_message_index, verdict.summary())
        if self.sink is not None:
            try:
                self.sink(verdict)
            except Exception:
                log.exception("verdict sink failed")
        return verdict

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.backend.close()


def parse_category_line(text: str, policy: Policy, *, has_images: bool) -> tuple[list[str], list[str], str | None]:
    """(violated codes, codes the policy excludes, error) from the model's category line."""
    line = text.replace(EOT, "").strip().splitlines()[0].strip() if text.strip() else ""
    if not line:
        return [], [], "the model answered 'unsafe' without a category"
    shown = policy.categories(has_images=has_images)
    codes, ignored, unknown = [], [], []
    for raw in line.split(","):
        code = raw.strip()
        if code in shown:
            codes.append(code)
        elif code in policy.excluded_categories:
            ignored.append(code)
        else:
            unknown.append(code)
    if unknown:
        shown_codes = ",".join(shown)
        return codes, ignored, f"the model named categories not in the policy: {unknown} (policy: {shown_codes})"
    return list(dict.fromkeys(codes)), list(dict.fromkeys(ignored)), None


def _checked_scores(scores: Sequence[Any], expected: int) -> list[Any]:
    """A backend must score every prompt: a short (or long) answer is a model failure, never a pass."""
    if len(scores) != expected:
        raise ModelOutputError(f"the backend returned {len(scores)} scores for {expected} prompts")
    return list(scores)


def _progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar over ``total`` prompts (a no-op bar when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="prompt", desc="llama guard", dynamic_ncols=True)


def _prompt_builder(tokenizer: Any, processor: Any) -> PromptBuilder:
    return PromptBuilder(
        tokenizer, getattr(processor, "image_processor", None), patch_size=getattr(processor, "patch_size", 14)
    )


def load_prompt_builder(model_id_or_path: str | os.PathLike[str], **kwargs: Any) -> PromptBuilder:
    """Only the tokenizer and image processor of a checkpoint: enough to build prompts, no weights."""
    from .backends.transformers import load_processor, resolve_model_path

    tokenizer, processor = load_processor(resolve_model_path(model_id_or_path, **kwargs))
    return _prompt_builder(tokenizer, processor)


def _check_prompt_parity(builder: PromptBuilder, processor: Any) -> bool | None:
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


__all__ = ["LlamaGuard", "load_prompt_builder", "parse_category_line"]
