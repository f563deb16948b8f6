"""``LlamaGuard``: classify conversations with a locally loaded Llama Guard 4."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import loading
from .backends.base import GuardBackend
from .core.batching import MicroBatcher, score_in_batches
from .core.conversation import Conversation, parse_conversation
from .core.decision import (
    WindowVerdict,
    answer_scores,
    below_threshold,
    categorized,
    expect_scores,
    failure_verdict,
    merge_windows,
    raise_unless_allowed,
    with_depth,
)
from .core.depth import load_identifier
from .core.errors import (
    GuardClosedError,
    GuardTimeoutError,
    InvalidConversationError,
    InvalidPolicyError,
    ModelOutputError,
)
from .core.images import ImageLimits
from .core.policy import DEFAULT_POLICY, Policy
from .core.prompt import Prompt, PromptBuilder
from .core.scores import AnswerScores
from .core.verdict import Verdict
from .core.verdict_cache import VerdictCache, cache_key
from .enforce import OnVerdict, report
from .logs import progress_bar
from .tracing import record_check

log = logging.getLogger("llamaguard_guardrails")

DEFAULT_MAX_PROMPT_TOKENS = 8192
_CLOSED = "this LlamaGuard is closed"


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
        on_verdict: OnVerdict | None = None,
        model_name: str = "",
        cache_size: int = 4096,
        micro_batching: bool = True,
        max_batch: int = 16,
        max_wait_ms: float = 0.0,
        allow_local_image_paths: bool = False,
        image_limits: ImageLimits | None = None,
    ) -> None:
        self.backend = backend
        self.prompts = prompt_builder
        self.policy = policy or DEFAULT_POLICY
        self.max_prompt_tokens = max_prompt_tokens
        self.batch_size = batch_size
        #: The audit hook, ``on_verdict(verdict, stage)`` as in every adapter: called with every verdict this guard
        #: gives, with stage ``"input"`` for a checked user turn and ``"output"`` for an agent turn.
        self.on_verdict = on_verdict
        self.model_name = model_name
        #: Open image path strings and file:// URLs (only for trusted input); pathlib.Path values always open.
        self.allow_local_image_paths = allow_local_image_paths
        #: What one conversation's images may cost (images, pixels per image and in total, encoded bytes).
        self.image_limits = image_limits or ImageLimits()
        self.is_test_model = False
        self.prompt_parity: bool | None = None
        self.cache: VerdictCache[Verdict] = VerdictCache(cache_size)
        #: Verdicts of single history windows: a growing conversation re-checks the same left-out history.
        self.window_cache: VerdictCache[WindowVerdict] = VerdictCache(cache_size)
        self.batcher = (
            MicroBatcher(self._score_batch, max_batch=max_batch, max_wait_s=max_wait_ms / 1000)
            if micro_batching
            else None
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="llamaguard")
        self._closed = False
        self._abandoned = 0  # checks whose caller left at their deadline (or was cancelled) and that still run
        self._abandoned_lock = threading.Lock()
        self._close_lock = threading.Lock()
        load_identifier()  # languages of each verdict (core/depth.py): loaded here, not in a check's deadline

    # -- loading (see loading.py) ----------------------------------------------------------------

    from_pretrained = classmethod(loading.from_pretrained)
    from_vllm = classmethod(loading.from_vllm)
    from_vllm_engine = classmethod(loading.from_vllm_engine)
    from_server = classmethod(loading.from_server)

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
        stop = threading.Event()
        future = self._submit(self._classify, conversation, policy, started, stop)
        try:
            return self._emit(self._result(future, policy.timeout_s))
        except concurrent.futures.TimeoutError:
            stop.set()  # the abandoned check stops at its next batch of windows and reports nothing
            self._abandon(future)
            return self._emit(self._timed_out(policy, started))

    async def aclassify(self, conversation: Any, *, policy: Policy | None = None) -> Verdict:
        """Async :meth:`classify`; all work runs off the event loop."""
        policy = policy or self.policy
        started = time.perf_counter()
        stop = threading.Event()
        future = self._submit(self._classify, conversation, policy, started, stop)
        work = asyncio.wrap_future(future)
        try:
            if policy.timeout_s is None:
                return self._emit(await asyncio.shield(work))
            return self._emit(await asyncio.wait_for(asyncio.shield(work), policy.timeout_s))
        except TimeoutError:
            stop.set()
            self._abandon(future)
            return self._emit(self._timed_out(policy, started))
        except asyncio.CancelledError:
            stop.set()
            self._abandon(future)
            task = asyncio.current_task()
            if self._closed and not (task is not None and task.cancelling()):
                raise GuardClosedError(_CLOSED) from None  # cancelled by close(), not by the caller
            raise

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
        items = list(conversations)
        if policy.timeout_s is None:
            return [
                self._emit(v, len(items)) for v in self._classify_many(items, policy, batch_size, progress, started)
            ]
        built: list[list[Prompt] | BaseException] = []  # filled while building: what a timed-out verdict can say
        stop = threading.Event()
        future = self._submit(self._classify_many, items, policy, batch_size, progress, started, built, stop)
        try:
            verdicts = self._result(future, max(0.0, policy.timeout_s - (time.perf_counter() - started)))
        except concurrent.futures.TimeoutError:
            stop.set()  # the abandoned work stops at its next conversation or forward pass
            self._abandon(future)
            groups = built[: len(items)] + [None] * (len(items) - len(built))
            verdicts = [self._timed_out(policy, started, None if isinstance(g, BaseException) else g) for g in groups]
        return [self._emit(v, len(items)) for v in verdicts]

    def check(self, conversation: Any, *, policy: Policy | None = None, stage: str | None = None) -> Verdict:
        """Like :meth:`classify`, but raise :class:`UnsafeContentError` unless the content may proceed (a verdict in
        the policy's grey zone raises :class:`ReviewRequired`)."""
        return raise_unless_allowed(self.classify(conversation, policy=policy), stage)

    async def acheck(self, conversation: Any, *, policy: Policy | None = None, stage: str | None = None) -> Verdict:
        return raise_unless_allowed(await self.aclassify(conversation, policy=policy), stage)

    # -- prompts ----------------------------------------------------------------------------------

    def build_prompts(self, conversation: Any, policy: Policy | None = None) -> list[Prompt]:
        """The exact token ids the model sees (several prompts when the last message is windowed)."""
        if isinstance(conversation, Conversation):
            conv = conversation
        else:
            conv = parse_conversation(
                conversation, allow_local_image_paths=self.allow_local_image_paths, image_limits=self.image_limits
            )
        prompts = self.prompts.build(conv, policy or self.policy, max_tokens=self.max_prompt_tokens)
        return with_depth(prompts, conv)

    def render(self, conversation: Any, policy: Policy | None = None) -> str:
        """The prompt text the model sees (first window), with control tokens written out."""
        return self.prompts.decode(self.build_prompts(conversation, policy)[0].input_ids)

    # -- internals --------------------------------------------------------------------------------

    def _classify(
        self, conversation: Any, policy: Policy, started: float, stop: threading.Event | None = None
    ) -> Verdict:
        """One check, without reporting it to ``on_verdict`` (the public methods do, exactly once). Once ``stop`` is
        set (its caller stopped waiting) it scores no further batch of windows: its verdict goes nowhere."""
        return self._unless_closed([self._classify_one(conversation, policy, started, stop)])[0]

    def _classify_one(
        self, conversation: Any, policy: Policy, started: float, stop: threading.Event | None = None
    ) -> Verdict:
        self._check_open()
        try:
            prompts = self.build_prompts(conversation, policy)
        except (InvalidConversationError, InvalidPolicyError):  # bad input: the caller's to fix, never a verdict
            raise
        except Exception as exc:  # noqa: BLE001 - a tokenizer or image-processor failure is a guard failure
            return self._failure(exc, policy, started)
        key = cache_key(prompts, policy) if self.cache.maxsize else b""
        hit = self.cache.get(key)
        if hit is not None:
            return self._from_cache(hit, started)
        known = self._known_windows(prompts, policy)
        todo = [p for w, p in enumerate(prompts) if w not in known]
        score = self.batcher.score if self.batcher else self.backend.score
        if stop is not None:  # an abandoned check stops between batches (nothing is cached from it)
            by_window = score_in_batches(
                dict(enumerate(todo)), lambda batch: expect_scores(score(batch), len(batch)), self.batch_size, stop=stop
            )
            if by_window is None:
                return self._timed_out(policy, started, prompts)
            scored: list[Any] = [by_window[n] for n in range(len(todo))]
        else:
            try:
                scored = score(todo) if todo else []
            except Exception as exc:  # noqa: BLE001 - every model failure becomes the fail mode
                scored = [exc] * len(todo)
        if len(scored) != len(todo):  # a short (or long) answer is a model failure, never a pass
            scored = [ModelOutputError(f"the backend returned {len(scored)} scores for {len(todo)} prompts")] * len(
                todo
            )
        rest = iter(scored)
        scores = [known[w] if w in known else next(rest) for w in range(len(prompts))]
        verdict = self._decide(prompts, scores, policy, started)
        self.cache.put(key, verdict)
        return verdict

    def _classify_many(
        self,
        conversations: list[Any],
        policy: Policy,
        batch_size: int | None,
        progress: bool,
        started: float,
        built: list[list[Prompt] | BaseException] | None = None,
        stop: threading.Event | None = None,
    ) -> list[Verdict]:
        """Build every conversation's prompts, then classify them in batches (all inside the caller's deadline)."""
        self._check_open()
        groups = self._build_all(conversations, policy, [] if built is None else built, stop)
        return self._unless_closed(self._classify_groups(groups, policy, batch_size, progress, started, stop))

    def _build_all(
        self,
        conversations: Iterable[Any],
        policy: Policy,
        groups: list[list[Prompt] | BaseException],
        stop: threading.Event | None = None,
    ) -> list[list[Prompt] | BaseException]:
        """Prompts of every conversation, appended to ``groups``; a guard failure while building is kept in its
        place. Returns early once ``stop`` is set (the caller's deadline passed)."""
        for n, item in enumerate(conversations):
            if stop is not None and stop.is_set():
                break
            try:
                groups.append(self.build_prompts(item, policy))
            except InvalidConversationError as exc:
                raise type(exc)(f"conversation {n}: {exc}") from exc
            except InvalidPolicyError:
                raise
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
        stop: threading.Event | None = None,
    ) -> list[Verdict]:
        prompt_groups = {g: prompts for g, prompts in enumerate(groups) if not isinstance(prompts, BaseException)}
        keys = {g: cache_key(prompts, policy) for g, prompts in prompt_groups.items()}
        cached = {g: self.cache.get(key) for g, key in keys.items()}
        known = {g: self._known_windows(prompts, policy) for g, prompts in prompt_groups.items() if cached[g] is None}
        todo = {
            (g, w): p
            for g, prompts in prompt_groups.items()
            if cached[g] is None
            for w, p in enumerate(prompts)
            if w not in known[g]
        }
        with progress_bar(len(todo), unit="prompt", desc="llama guard", enabled=progress) as bar:
            size = batch_size or self.batch_size
            scores = score_in_batches(todo, self._score_batch, size, stop=stop, progress=bar.update)
        if scores is None:
            return []  # abandoned at its deadline: the caller has its fail-mode verdicts
        verdicts = []
        for g, item in enumerate(groups):
            if isinstance(item, BaseException):
                verdicts.append(self._failure(item, policy, started))
            elif cached[g] is not None:
                verdicts.append(self._from_cache(cached[g], started))
            else:
                window_scores = [known[g][w] if w in known[g] else scores[(g, w)] for w in range(len(item))]
                verdict = self._decide(item, window_scores, policy, started)
                self.cache.put(keys[g], verdict)
                verdicts.append(verdict)
        return verdicts

    def _score_batch(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        return expect_scores(self.backend.score(prompts), len(prompts))

    def _timed_out(self, policy: Policy, started: float, prompts: list[Prompt] | None = None) -> Verdict:
        exc = GuardTimeoutError(f"the check did not finish within {policy.timeout_s} s")
        return self._failure(exc, policy, started, prompts)

    @staticmethod
    def _from_cache(verdict: Verdict, started: float) -> Verdict:
        return verdict.model_copy(update={"cached": True, "latency_ms": _ms_since(started)})

    def _known_windows(self, prompts: Sequence[Prompt], policy: Policy) -> dict[int, WindowVerdict]:
        """Cached verdicts of the history windows among ``prompts``, by position."""
        if not self.window_cache.maxsize:
            return {}
        known = {w: self.window_cache.get(cache_key([p], policy)) for w, p in enumerate(prompts) if p.history}
        return {w: verdict for w, verdict in known.items() if verdict is not None}

    def _decide(self, prompts: list[Prompt], scores: list[Any], policy: Policy, started: float) -> Verdict:
        """The verdict from every window's scores (or a history window's cached verdict)."""
        try:
            windows = [
                s if isinstance(s, WindowVerdict) else self._window(p, s, policy)
                for p, s in zip(prompts, expect_scores(scores, len(prompts)), strict=True)
            ]
        except Exception as exc:  # noqa: BLE001 - every model failure becomes the fail mode
            return self._failure(exc, policy, started, prompts)
        if self.window_cache.maxsize:
            for prompt, window in zip(prompts, windows, strict=True):
                if prompt.history:
                    self.window_cache.put(cache_key([prompt], policy), window)
        return merge_windows(prompts, windows, policy, latency_ms=_ms_since(started))

    def _window(self, prompt: Prompt, scores: AnswerScores | BaseException, policy: Policy) -> WindowVerdict:
        checked = answer_scores(scores)
        safe = below_threshold(checked, policy)
        if safe is not None:
            return safe
        text = self.backend.category_text(prompt, leading_blank=checked.leading_blank)
        return categorized(checked, text, policy, has_images=prompt.has_images)

    @staticmethod
    def _failure(
        exc: BaseException, policy: Policy, started: float, prompts: Sequence[Prompt] | None = None
    ) -> Verdict:
        return failure_verdict(exc, policy, prompts, latency_ms=_ms_since(started))

    def _emit(self, verdict: Verdict, batch_size: int = 1) -> Verdict:
        record_check(verdict, model=self.model_name, backend=self.backend.name, batch_size=batch_size)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s message %d: %s", verdict.checked_role, verdict.checked_message_index, verdict.summary())
        return report(verdict, "input" if verdict.checked_role == "User" else "output", self.on_verdict)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the micro-batcher's thread and the worker pool, empty the verdict cache and close the backend.

        Idempotent. Afterwards every check raises :class:`GuardClosedError` (never a verdict, whatever the fail
        mode), and so does a check that was running or queued while the guard closed; nothing else keeps the
        guard, its backend or its model alive (drop your references and they are freed).
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self.batcher is not None:
            self.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.cache.clear()
        self.window_cache.clear()
        self.backend.close()

    def __enter__(self) -> LlamaGuard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _unless_closed(self, verdicts: list[Verdict]) -> list[Verdict]:
        """A check cut off by :meth:`close` raises instead of giving its fail-mode verdict."""
        errors = [v.error for v in verdicts if v.error is not None]
        if errors and self._closed:
            raise GuardClosedError(f"{_CLOSED} while the check ran ({errors[0]})")
        return verdicts

    @property
    def abandoned_checks(self) -> int:
        """Checks whose caller stopped waiting (their deadline passed, or the caller was cancelled) and that still
        run in the background: they hold the model as any check does, so a server counts them as busy."""
        return self._abandoned

    def _abandon(self, future: concurrent.futures.Future[Any]) -> None:
        """Stop waiting for ``future``: cancelled if it has not started, else counted until it finishes."""
        if future.cancel() or future.done():
            return
        with self._abandoned_lock:
            self._abandoned += 1
        future.add_done_callback(self._abandoned_finished)

    def _abandoned_finished(self, _: concurrent.futures.Future[Any]) -> None:
        with self._abandoned_lock:
            self._abandoned -= 1

    def _check_open(self) -> None:
        if self._closed:
            raise GuardClosedError(f"{_CLOSED}: create a new LlamaGuard to check content")

    def _submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn`` on the guard's pool (a closed guard raises :class:`GuardClosedError`)."""
        self._check_open()
        try:
            return self._executor.submit(fn, *args)
        except RuntimeError as exc:  # the pool was shut down by a concurrent close()
            raise GuardClosedError(_CLOSED) from exc

    def _result(self, future: concurrent.futures.Future[Any], timeout: float) -> Any:
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.CancelledError as exc:  # still queued when close() shut the pool down
            raise GuardClosedError(_CLOSED) from exc


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


__all__ = ["LlamaGuard"]
