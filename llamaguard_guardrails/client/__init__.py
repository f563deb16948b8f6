"""The client-side guard: any OpenAI-compatible client, checked locally by a :class:`LlamaGuard`.

:func:`guard_client` wraps ``openai.OpenAI`` / ``AsyncOpenAI`` (for OpenAI, vLLM, LiteLLM, OGX and every
OpenAI-compatible server), ``ogx_client.OgxClient`` / ``AsyncOgxClient`` and ``LlamaStackClient`` /
``AsyncLlamaStackClient`` (the library clients included). ``chat.completions.create``, ``responses.create`` and
``completions.create`` are checked:

- **before the call**: the request (the last user turn, or the tool results sent back, in the context of the
  earlier messages / the ``instructions``), with the request fields the model reads beside them (tool
  definitions, output schemas, a predicted output) shown as context;
- **before the answer is returned**: every field of the answer (text, ``refusal``, reasoning, annotations) and
  every tool call it proposes (code-interpreter calls are shown as code, so S14 applies), MCP approval requests,
  and what server-side tools return (MCP results and tool lists, file search results).

**A guarded client is an allow-list** (:mod:`.surface`): besides the guarded methods, only harmless attributes
(``models.list`` / ``retrieve``, ``close``, ``with_options`` / ``copy`` returning a guarded client, the context
managers, ``conversations.create`` without ``items``, which an ``Agent`` session needs) are reachable; anything else (``with_raw_response``, ``post``, ``beta``, ``batches``, a method a new SDK
release adds ...) raises :class:`UnguardedAttributeError`. A request field the guard is not shown and does not
know to be harmless raises ``InvalidConversationError`` before anything is sent.

Streams: ``stream_mode="buffered"`` (default) releases a stream once checked whole; ``"windowed"`` releases
text as it is checked, window by window (:mod:`.streams`). What the guard cannot be shown (chat ``audio``, an
unknown field, Responses item type or stream event, a tool call without a name) raises
``InvalidConversationError``, and nothing is released.

Every verdict goes to ``on_verdict(verdict, stage)``; a block goes through
:func:`~llamaguard_guardrails.enforce`: :class:`UnsafeContentError` (``on_block="raise"``, the default;
``.stage`` is ``"input"``, ``"tool_result"``, ``"output"`` or ``"tool_call"``) or a refusal of the same type
as the real result (``on_block="refuse"``, ``finish_reason="content_filter"`` for chat and completions).

History held on the server (``previous_response_id``, ``conversation``) is not fetched: the new input is checked
in the context of ``instructions`` only.

Modules: :mod:`.proxy` (the wrapped objects), :mod:`.surface` (the allow-lists), :mod:`.families` (the client
libraries and their result types), :mod:`.checker` (guard calls and enforcement), :mod:`.chat` /
:mod:`.responses` / :mod:`.completions` (answers -> core messages), :mod:`.streams` (buffered and windowed
release), :mod:`.refusals` (refusals in the shape of the real result), :mod:`.fields` (reading untrusted objects).
"""

from __future__ import annotations

from typing import Any

from ..core.policy import Policy
from ..core.windows import StreamMode
from ..enforce import DEFAULT_REFUSAL, OnBlock, OnReview, OnVerdict, RefusalMessage
from ..guard import LlamaGuard
from .checker import Checker
from .families import family_of
from .proxy import AsyncGuardedClient, GuardedClient, Settings
from .streams import StreamWindow
from .surface import UnguardedAttributeError


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
    stream_mode: StreamMode = "buffered",
    window_size: int = 256,
    window_overlap: int = 64,
) -> GuardedClient | AsyncGuardedClient:
    """Wrap ``client`` (sync or async) so its chat completions, responses and completions are checked by ``guard``.

    ``refusal_message`` is a string or ``f(verdict, stage) -> str``; ``on_verdict(verdict, stage)`` sees every
    verdict (audit logs, metrics); ``on_review(verdict, stage)`` decides a verdict in the policy's grey zone
    (``True`` lets it through; without it such content is held back). ``stream_mode="windowed"`` releases streamed text once each ``window_size``
    characters are checked in context, holding back the last ``window_overlap``.
    """
    family, is_async = family_of(client)
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
    settings = Settings(checker, family, is_async, StreamWindow(stream_mode, window_size, window_overlap))
    return (AsyncGuardedClient if is_async else GuardedClient)(client, settings)


__all__ = [
    "DEFAULT_REFUSAL",
    "AsyncGuardedClient",
    "GuardedClient",
    "StreamMode",
    "UnguardedAttributeError",
    "guard_client",
]
