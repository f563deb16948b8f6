"""What a model of a guarded agent receives is what the guard checked, whoever built the request.

``LlamaGuardMiddleware`` checks the thread's state before each model call (``before_model``), but the model reads
the *request*, and other middlewares build it: ``dynamic_prompt`` puts text into the system message,
``wrap_model_call`` hooks add or replace messages, ``SummarizationMiddleware`` (after the guard) writes an
LLM's summary into the state after the guard's hook ran, and ``ModelFallbackMiddleware`` or a router swap in
another model. So the middleware runs its model handler under :func:`guarded_model_calls`: every chat model run
inside it, whichever model and whoever built its input,

- is tagged ``"nostream"`` (LangGraph's ``stream_mode="messages"`` shows none of its tokens before the output
  check; a fallback model streams nothing either), and
- has each input message the guard has not checked (its fingerprint, see :mod:`._thread`, is not recorded)
  checked in the context before it when the run starts, in a callback that raises :class:`InputBlocked`
  (a ``BaseException``: no retry or fallback middleware catches it) before the model runs;
- reaches the application's observing callback handlers only once the answer is checked (:mod:`._observers`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.constants import TAG_NOSTREAM

from ..enforce import Refusal
from . import _thread as thread
from ._observers import ObserverHold
from ._steps import Steps, run
from .convert import OpenAIMessage, message_to_openai

Judge = Callable[[list[list[OpenAIMessage]], str], Steps[list[Refusal | None]]]


class InputBlocked(BaseException):
    """A model's input held a message the guard blocked: raised before the model runs, caught by the middleware."""

    def __init__(self, refusal: Refusal, messages: list[BaseMessage]) -> None:
        super().__init__(f"model input blocked at {refusal.stage}")
        self.refusal = refusal
        self.messages = messages


class ModelInputCheck(BaseCallbackHandler):
    """Checks each chat (or completion) model run's input when it starts: every message not checked yet.

    ``known`` holds the fingerprints already checked (the thread's record); ``checked`` collects the ones this
    handler checked and let through, for the middleware to record. ``judge`` is the middleware's batched check.
    """

    raise_error = True
    llamaguard_check = True  # runs live (see ._observers)
    run_inline = False  # under an async run LangChain runs it in a worker thread: the event loop is not blocked

    def __init__(
        self, judge: Judge, known: set[str], enabled: bool = True, key: bytes = b"", stage: str = "input"
    ) -> None:
        self.judge = judge
        self.key = key
        self.stage = stage
        self.known = set(known)
        self.enabled = enabled
        self.checked: list[str] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        for conversation in messages:
            self._check(conversation)

    def on_llm_start(self, serialized: Any, prompts: list[str], **kwargs: Any) -> None:
        for prompt in prompts:
            self._check([HumanMessage(prompt)])

    def _check(self, conversation: Sequence[BaseMessage]) -> None:
        if not self.enabled:
            return
        prints = [thread.fingerprint(m, self.key) for m in conversation]
        new = [i for i, fp in enumerate(prints) if fp is None or fp not in self.known]
        if not new:
            return
        shown = [message_to_openai(m) for m in conversation]
        refusals = run(self.judge([shown[: i + 1] for i in new], self.stage))
        blocked = [conversation[i] for i, r in zip(new, refusals) if r is not None]
        if blocked:
            raise InputBlocked(next(r for r in refusals if r is not None), blocked)
        for i in new:
            if prints[i] is not None:
                self.known.add(prints[i])
                self.checked.append(prints[i])


@contextlib.contextmanager
def guarded_model_calls(check: ModelInputCheck, hold: ObserverHold, nostream: bool = True) -> Iterator[None]:
    """Run what is inside with every model run's input checked by ``check``, its observing callback handlers held
    by ``hold`` (see :mod:`._observers`) and (``nostream``) tagged ``"nostream"``: all are set on the config that LangChain hands every run started inside (the context's child
    config)."""
    parent = var_child_runnable_config.get() or {}
    callbacks = hold.held(parent.get("callbacks"))  # observers see the runs once the answer is checked
    if isinstance(callbacks, BaseCallbackManager):
        callbacks = callbacks.copy()
        callbacks.add_handler(check, inherit=True)
    else:
        callbacks = [*(callbacks or []), check]
    tags = [*(parent.get("tags") or []), *([TAG_NOSTREAM] if nostream else [])]
    config = {**parent, "callbacks": callbacks, "tags": tags}
    token = var_child_runnable_config.set(config)  # type: ignore[arg-type]
    try:
        yield
    finally:
        var_child_runnable_config.reset(token)


__all__ = ["InputBlocked", "ModelInputCheck", "guarded_model_calls"]
