"""Client-side guard for Llama Stack servers you do not control.

:func:`guard_client` wraps a ``LlamaStackClient`` or ``AsyncLlamaStackClient`` (including the
in-process library clients) so that ``client.chat.completions.create`` and
``client.responses.create`` are checked locally by a :class:`LlamaGuard`:

- **before the call**: the request (the last user turn, or the tool results sent back, in the
  context of the earlier messages / the ``instructions``);
- **before the answer is returned**: every field of the answer (text, ``refusal``, reasoning,
  annotations) and every tool call it proposes (code-interpreter calls are shown as code, so S14
  applies), MCP approval requests, and what server-side tools return (MCP results and tool lists,
  file search results).

Streams are buffered and checked before anything is released: no unchecked text reaches the caller
(the first chunk arrives when the whole answer has been generated and checked). What the guard cannot be
shown (chat ``audio``, an unknown field, Responses item type or stream event, a tool call without a name)
raises ``InvalidConversationError``, and nothing is released.

Every verdict goes to ``on_verdict(verdict, stage)``; a block goes through
:func:`~llamaguard_guardrails.enforce`: :class:`UnsafeContentError` (``on_block="raise"``, the default;
``.stage`` is ``"input"``, ``"tool_result"``, ``"output"`` or ``"tool_call"``) or a refusal of the same type
as the real result (``on_block="refuse"``, ``finish_reason="content_filter"`` for chat).

Everything else (models, conversations, files...) passes through unchanged, so a guarded client can
be handed to ``llama_stack_client.lib.agents.Agent``: its turns go through ``responses.create``.
History held on the server (``previous_response_id``, ``conversation``) is not fetched: the new input
is checked in the context of ``instructions`` only.

Modules: :mod:`.proxy` (the wrapped objects), :mod:`.checker` (guard calls and enforcement),
:mod:`.chat` / :mod:`.responses` (answers -> core messages), :mod:`.streams` (buffering and replay),
:mod:`.refusals` (refusals in the shape of the real result), :mod:`.fields` (reading untrusted objects).
"""

from __future__ import annotations

from typing import Any

from ...core.policy import Policy
from ...enforce import DEFAULT_REFUSAL, OnBlock, OnReview, OnVerdict, RefusalMessage
from ...guard import LlamaGuard
from .checker import Checker
from .proxy import AsyncGuardedLlamaStackClient, GuardedLlamaStackClient


def guard_client(
    client: Any,
    guard: LlamaGuard,
    *,
    policy: Policy | None = None,
    on_block: OnBlock = "raise",
    refusal_message: RefusalMessage = DEFAULT_REFUSAL,
    on_verdict: OnVerdict | None = None,
    on_review: OnReview | None = None,
    check_input: bool = True,
    check_output: bool = True,
) -> GuardedLlamaStackClient | AsyncGuardedLlamaStackClient:
    """Wrap ``client`` (sync or async) so its chat completions and responses are checked by ``guard``.

    ``refusal_message`` is a string or ``f(verdict, stage) -> str``; ``on_verdict(verdict, stage)`` sees every
    verdict (audit logs, metrics); ``on_review(verdict, stage)`` decides a verdict in the policy's grey zone
    (``True`` lets it through; without it such content is held back).
    """
    from llama_stack_client import AsyncLlamaStackClient, LlamaStackClient

    checker = Checker(
        guard,
        policy=policy,
        on_block=on_block,
        refusal_message=refusal_message,
        on_verdict=on_verdict,
        on_review=on_review,
        check_input=check_input,
        check_output=check_output,
    )
    if isinstance(client, AsyncLlamaStackClient):
        return AsyncGuardedLlamaStackClient(client, checker)
    if isinstance(client, LlamaStackClient):
        return GuardedLlamaStackClient(client, checker)
    raise TypeError(f"guard_client expects a LlamaStackClient or AsyncLlamaStackClient, got {type(client).__name__}")


__all__ = ["DEFAULT_REFUSAL", "AsyncGuardedLlamaStackClient", "GuardedLlamaStackClient", "guard_client"]
