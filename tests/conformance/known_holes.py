"""Cells that fail today because of a known hole: ``xfail(strict=True)``, with the issue item they belong to.

When a fix lands, its cells XPASS and fail the run: remove their entries here (the failure names the cell).
Issue 13 lists items 1-13; "NEW" marks holes this suite found that the issue does not list.
"""

from __future__ import annotations

ITEM_2_STREAM = "issue 13 item 2: a streamed AIMessageChunk's name is not shown to the guard"

CORE = ("LlamaGuard.classify", "LlamaGuard.aclassify", "LlamaGuard.classify_batch", "LlamaGuard.check")
OPENAI_FORMAT = (*CORE, "llama stack run_shield", "moderate (local)", "CLI check")
RUNNABLES = ("LlamaGuardRunnable (input)", "LlamaGuardRunnable (output)", "LlamaGuardRunnable (output) .stream")
STREAMS = tuple(f"guard_chain .{m} ({mode})" for m in ("stream", "astream") for mode in ("buffered", "windowed"))
CHAINS = ("guard_chain .invoke", "guard_chain .batch", *STREAMS)
MIDDLEWARE = ("LlamaGuardMiddleware .invoke", "LlamaGuardMiddleware .ainvoke", "LlamaGuardMiddleware .stream(messages)")
CALLBACKS = ("LlamaGuardCallbackHandler", "AsyncLlamaGuardCallbackHandler .ainvoke")
LANGCHAIN = (*RUNNABLES, *CHAINS, *MIDDLEWARE, *CALLBACKS)
CHAT_STREAMS = ("guard_client chat stream", "guard_client chat stream (async)")
CHAT = ("guard_client chat", *CHAT_STREAMS)
RESPONSE_STREAMS = ("guard_client responses stream", "guard_client responses stream (async)")
RESPONSES = ("guard_client responses", *RESPONSE_STREAMS)
CLIENT = (*CHAT, *RESPONSES)
EVERYWHERE = "*"


def _cells(entries: tuple[str, ...] | str, cases: tuple[str, ...], why: str) -> dict[tuple[str, str], str]:
    return {(entry, case): why for entry in ((entries,) if isinstance(entries, str) else entries) for case in cases}


KNOWN: dict[tuple[str, str], str] = {
    **_cells(("LlamaGuardRunnable (output) .stream", *STREAMS, "LlamaGuardMiddleware .stream(messages)"), ("a.assistant_name",), ITEM_2_STREAM),
}


def hole(entry: str, case: str) -> str | None:
    """The known hole of this cell (``None``: the cell must pass)."""
    return KNOWN.get((entry, case)) or KNOWN.get((EVERYWHERE, case))
