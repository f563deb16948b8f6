"""The Llama Stack ``Safety`` implementation: shields and moderations from an in-process Llama Guard 4.

Built for llama-stack 0.7.x (``llama_stack_api``): ``run_shield(RunShieldRequest)`` and
``run_moderation(RunModerationRequest)``. The model is loaded once per provider, in a worker thread;
every check runs off the event loop (``LlamaGuard.aclassify``).

Bad requests raise :class:`RequestError` subclasses: FastAPI ``HTTPException`` s that are also the core's
typed errors (``ValueError`` s). llama-stack 0.7.3 answers a plain ``ValueError`` with a 400 too, but
through its catch-all handler, which logs a traceback and then closes the connection, so a client that
does not retry fails its next call; an ``HTTPException`` gets a clean 4xx on a connection kept open.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException
from llama_stack.log import get_logger
from llama_stack_api import (
    GetShieldRequest,
    ModerationObject,
    ModerationObjectResults,
    RunModerationRequest,
    RunShieldRequest,
    RunShieldResponse,
    Safety,
    SafetyViolation,
    Shield,
    ShieldsProtocolPrivate,
    ViolationLevel,
)

from ...core.categories import LLAMA_GUARD_4_CATEGORIES, category_name
from ...core.decision import failure_verdict
from ...core.errors import GuardError, InvalidConversationError, InvalidPolicyError
from ...core.images import ImageLimits
from ...core.policy import Policy
from ...core.verdict import Verdict
from ...enforce import Refusal, enforce
from ...guard import LlamaGuard
from .config import LlamaGuardProviderConfig, shield_policy
from .limits import Admission, text_size

log = get_logger(name=__name__, category="safety")


class RequestError(HTTPException):
    """A request the provider refuses: a clean 4xx from llama-stack; ``str()`` is the message."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        Exception.__init__(self, message)
        HTTPException.__init__(self, status or self.status, message, headers)

    def __str__(self) -> str:
        return str(self.detail)


class ShieldParamsError(RequestError, InvalidPolicyError):
    """A shield's ``params`` are unknown or out of range (400)."""


class ShieldConversationError(RequestError, InvalidConversationError):
    """The messages or moderation inputs cannot be checked as given (400)."""


class RequestTooLargeError(RequestError, InvalidConversationError):
    """A request past the provider's ``max_inputs`` (400) or ``max_request_chars`` (413)."""


class ShieldBusyError(RequestError, GuardError, ValueError):
    """More checks than ``max_pending`` would be running or queued (429, with ``Retry-After``)."""

    status = 429


class ShieldNotFoundError(RequestError, GuardError, ValueError):
    """No shield of this provider has the id (or ``provider_shield_id``) asked for (404)."""

    status = 404


class LlamaGuardSafetyImpl(Safety, ShieldsProtocolPrivate):
    """Safety provider (``Safety`` + ``ShieldsProtocolPrivate``) backed by one shared :class:`LlamaGuard`.

    Shields are resolved at call time through ``shield_store`` (set by Llama Stack's routing table),
    so shields kept in the registry across restarts work without a new ``register_shield`` call.
    """

    shield_store: Any = None

    def __init__(self, config: LlamaGuardProviderConfig, *, guard: LlamaGuard | None = None) -> None:
        self.config = config
        self.default_policy = config.policy()
        self._guard = guard
        self._lock = asyncio.Lock()
        self._admission = Admission(config.max_pending)

    # -- lifecycle --------------------------------------------------------------------------------

    async def initialize(self) -> None:
        if self.config.load_on_startup:
            await self.load_guard()

    async def shutdown(self) -> None:
        if self._guard is not None:
            self._guard.close()
            self._guard = None

    async def load_guard(self) -> LlamaGuard:
        """The provider's guard, loaded once (in a worker thread, never on the event loop)."""
        if self._guard is not None:
            return self._guard
        async with self._lock:
            if self._guard is None:
                cfg = self.config
                log.info("loading Llama Guard 4", model=cfg.model, device=cfg.device, dtype=cfg.dtype)
                self._guard = await asyncio.to_thread(
                    LlamaGuard.from_pretrained,
                    cfg.model,
                    device=cfg.device,
                    dtype=cfg.dtype,
                    quantization=cfg.quantization,
                    local_files_only=cfg.local_files_only,
                    max_prompt_tokens=cfg.max_prompt_tokens,
                    prefix_caching=cfg.prefix_caching,
                    cache_conversations=cfg.cache_conversations,
                    prefix_cache_mb=cfg.prefix_cache_mb,
                    allow_local_image_paths=cfg.allow_local_image_paths,
                    image_limits=ImageLimits(**cfg.image_limits),
                    policy=self.default_policy,
                )
        return self._guard

    # -- shields ----------------------------------------------------------------------------------

    async def register_shield(self, shield: Shield) -> None:
        """Validate the shield's params now, so a bad shield is refused with a clear 400: as values, and, once the
        model is loaded, against its prompt (custom categories that leave no room for content)."""
        policy = self._policy(shield)
        if self._guard is not None:
            with _bad_request_is_400(shield):
                await asyncio.to_thread(self._guard.build_prompts, [{"role": "user", "content": "x"}], policy)

    def _policy(self, shield: Shield) -> Policy:
        try:
            return shield_policy(self.default_policy, shield.params)
        except ValueError as exc:
            raise ShieldParamsError(f"shield {shield.identifier!r}: {exc}") from exc

    def _bounded(self, policy: Policy) -> Policy:
        """``policy`` with its deadline capped at ``max_timeout_s`` (no deadline, or a longer one, is the cap)."""
        cap = self.config.max_timeout_s
        return policy.model_copy(update={"timeout_s": min(policy.timeout_s or cap, cap)})

    def _check_size(self, value: Any, what: str) -> None:
        limit = self.config.max_request_chars
        if text_size(value, limit) > limit:
            raise RequestTooLargeError(
                f"the {what} hold more than {limit} characters (the provider's max_request_chars): send less text "
                "or smaller images per request",
                status=413,
            )

    @contextmanager
    def _admit(self, count: int) -> Iterator[None]:
        """Admit ``count`` checks, or :class:`ShieldBusyError` (429) when more than ``max_pending`` would run."""
        admission = self._admission
        if not admission.admits(count, self._guard):
            raise ShieldBusyError(
                f"the safety provider is busy ({admission.busy(self._guard)} checks pending, max_pending "
                f"{admission.limit}): retry later",
                headers={"Retry-After": "1"},
            )
        admission.pending += count
        try:
            yield
        finally:
            admission.pending -= count

    async def unregister_shield(self, identifier: str) -> None:
        """Nothing is cached per shield: shields are looked up at call time."""

    async def _shield(self, shield_id: str) -> Shield:
        if self.shield_store is None:
            raise RuntimeError("the provider has no shield_store: it must be run inside a Llama Stack")
        try:
            return await self.shield_store.get_shield(GetShieldRequest(identifier=shield_id))
        except ValueError as exc:
            raise ShieldNotFoundError(f"shield {shield_id!r} not found: {exc}") from exc

    # -- checks -----------------------------------------------------------------------------------

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        """Classify the last message of ``request.messages`` in the context of the earlier ones."""
        shield = await self._shield(request.shield_id)
        policy = self._bounded(self._policy(shield))
        self._check_size(request.messages, "messages")
        with self._admit(1):
            verdict = await self._classify(list(request.messages), policy)  # the core reads dicts and models alike
        return RunShieldResponse(violation=self._violation(verdict, shield))

    async def run_moderation(self, request: RunModerationRequest) -> ModerationObject:
        """OpenAI-compatible moderations: each input is classified as one user message."""
        inputs = [request.input] if isinstance(request.input, str) else list(request.input)
        if not inputs:
            raise ShieldConversationError("moderation input is empty: pass a string or a non-empty list of strings")
        if len(inputs) > self.config.max_inputs:
            raise RequestTooLargeError(
                f"moderation input holds {len(inputs)} strings; this provider accepts at most {self.config.max_inputs} "
                "per request (max_inputs): split it"
            )
        self._check_size(inputs, "moderation inputs")
        shield = await self._shield_for_model(request.model)
        policy = self._bounded(self._policy(shield) if shield else self.default_policy)
        with self._admit(len(inputs)):
            verdicts = await self._classify_many(inputs, policy)
        extra = {"shield_id": shield.identifier} if shield else {}
        return ModerationObject(
            id=f"modr-{uuid.uuid4().hex}",
            model=request.model or self.config.model,
            results=[self._moderation_result(v, policy, extra) for v in verdicts],
        )

    async def _shield_for_model(self, model: str | None) -> Shield | None:
        """The shield of this provider whose ``provider_shield_id`` is ``model`` (the router passes it)."""
        if model is None or self.shield_store is None or not hasattr(self.shield_store, "list_shields"):
            return None
        provider_id = getattr(self, "__provider_id__", None)
        shields = (await self.shield_store.list_shields()).data
        matches = [
            s
            for s in shields
            if s.provider_resource_id == model and (provider_id is None or s.provider_id == provider_id)
        ]
        if not matches:
            raise ShieldNotFoundError(f"no shield of this provider has provider_shield_id {model!r}")
        return matches[0]

    async def _classify(self, messages: Any, policy: Policy) -> Verdict:
        try:
            guard = await self.load_guard()
        except Exception as exc:  # noqa: BLE001 - a guard that cannot load follows the fail mode
            return failure_verdict(exc, policy)
        with _bad_request_is_400():
            return await guard.aclassify(messages, policy=policy)

    async def _classify_many(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        for n, text in enumerate(texts):
            if not isinstance(text, str):
                raise ShieldConversationError(f"moderation input {n} must be a string, got {type(text).__name__}")
        try:
            guard = await self.load_guard()
        except Exception as exc:  # noqa: BLE001
            return [failure_verdict(exc, policy) for _ in texts]
        with _bad_request_is_400():  # batched forward passes; the deadline (always set: see _bounded) bounds them all
            if len(texts) == 1:
                return [await guard.aclassify(texts[0], policy=policy)]
            return await asyncio.to_thread(guard.classify_batch, list(texts), policy=policy)

    # -- results ----------------------------------------------------------------------------------

    def _metadata(self, verdict: Verdict) -> dict[str, Any]:
        guard = self._guard
        return {
            "violation_type": list(verdict.categories),
            "categories": list(verdict.category_names),
            "unsafe_probability": verdict.unsafe_probability,
            "threshold": verdict.threshold,
            "status": verdict.status,
            "outcome": verdict.outcome,  # "review": the policy's grey zone (refused here: a shield cannot pause)
            "languages": list(verdict.languages),
            "out_of_depth": list(verdict.out_of_depth),
            "error": verdict.error,
            "checked_role": verdict.checked_role,
            "ignored_categories": list(verdict.ignored_categories),
            "omitted_messages": list(verdict.omitted_messages),
            "model": guard.model_name if guard else self.config.model,
            "test_model": bool(guard and guard.is_test_model),
        }

    def _refusal_text(self, verdict: Verdict, stage: str) -> str:
        """The config's message for a block: ``error_user_message`` when the guard failed, else ``user_message``."""
        return self.config.error_user_message if verdict.error else self.config.user_message

    def _enforce(self, verdict: Verdict, stage: str) -> Refusal | None:
        return enforce(verdict, stage, on_block="refuse", refusal_message=self._refusal_text)

    def _violation(self, verdict: Verdict, shield: Shield) -> SafetyViolation | None:
        """ERROR when blocked (also when the guard failed under fail-closed); WARN for a fail-open error."""
        refusal = self._enforce(verdict, "output" if verdict.checked_role == "Agent" else "input")
        metadata = self._metadata(verdict) | {"shield_id": shield.identifier}
        if refusal is not None:
            return SafetyViolation(violation_level=ViolationLevel.ERROR, user_message=refusal.text, metadata=metadata)
        if verdict.error is not None:  # fail-open: let it through, but say that nothing was checked
            return SafetyViolation(violation_level=ViolationLevel.WARN, user_message=None, metadata=metadata)
        return None

    def _moderation_result(self, verdict: Verdict, policy: Policy, extra: dict[str, Any]) -> ModerationObjectResults:
        refusal = self._enforce(verdict, "input")
        codes = [*LLAMA_GUARD_4_CATEGORIES, *policy.custom_names]
        names = {code: category_name(code, policy.custom_names) for code in codes}
        violated = set(verdict.categories)
        return ModerationObjectResults(
            flagged=refusal is not None,
            categories={name: code in violated for code, name in names.items()},
            category_scores={
                name: verdict.unsafe_probability if code in violated else 0.0 for code, name in names.items()
            },
            category_applied_input_types={name: ["text"] if code in violated else [] for code, name in names.items()},
            user_message=refusal.text if refusal is not None else None,
            metadata=self._metadata(verdict) | extra,
        )


@contextmanager
def _bad_request_is_400(shield: Shield | None = None) -> Iterator[None]:
    """Re-raise the core's ``InvalidConversationError`` as a :class:`ShieldConversationError` and its
    ``InvalidPolicyError`` (a shield's policy the model's prompt cannot hold) as a :class:`ShieldParamsError`:
    clean 400s on a connection kept open, where llama-stack's catch-all logs a traceback and closes it."""
    try:
        yield
    except RequestError:
        raise
    except InvalidConversationError as exc:
        raise ShieldConversationError(str(exc)) from exc
    except InvalidPolicyError as exc:
        raise ShieldParamsError(
            f"shield {shield.identifier!r}: {exc}" if shield else f"the shield's policy: {exc}"
        ) from exc
