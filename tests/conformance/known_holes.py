"""Cells that fail today because of a known hole: ``xfail(strict=True)``, with the issue item they belong to.

When a fix lands, its cells XPASS and fail the run: remove their entries here (the failure names the cell).
Issue 13 lists items 1-13; "NEW" marks holes this suite found that the issue does not list.
"""

from __future__ import annotations

ITEM_1 = "issue 13 item 1: only the last block of the last message is windowed"
ITEM_2 = "issue 13 item 2: the mapping drops this field (or rejects a refusal-only message)"
ITEM_2_LC = "issue 13 item 2: LangChain AIMessage.additional_kwargs['refusal'] is not shown to the guard"
ITEM_3 = "issue 13 item 3: stream chunks that cannot be added together: only the last one is checked"
ITEM_4 = "issue 13 item 4: guard_client releases this unchecked"
ITEM_5 = "issue 13 item 5: what this tool returns is not checked"
ITEM_9 = "issue 13 item 9: one bad line kills the moderate run (a traceback, no output)"
ITEM_6 = "issue 13 item 6: the decision model ignores the policy threshold (AutoMode's fixed 0.5 decides)"
ITEM_7 = "issue 13 item 7: scores outside [0, 1] pass as safe"
NEW_NAMELESS = "NEW: guard_client checks a tool call without a name as 'unknown_tool' and releases it"
NEW_CUSTOM_STREAM = "NEW: guard_client chat streams: a streamed custom tool call (custom.name/input) is not read"

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
    **_cells((*OPENAI_FORMAT, *LANGCHAIN, *CLIENT), ("a.long_first_call",), ITEM_1),
    **_cells((*OPENAI_FORMAT, *CLIENT), ("a.two_long_parts",), ITEM_1),
    **_cells((*OPENAI_FORMAT, *CHAT, *LANGCHAIN), ("a.user_name", "a.assistant_name", "b.unknown_field"), ITEM_2),
    **_cells(OPENAI_FORMAT, ("a.refusal", "a.refusal_and_content", "a.reasoning_content"), ITEM_2),
    **_cells(CHAT, ("a.reasoning_content",), ITEM_2),
    **_cells(CHAT_STREAMS, ("a.stream_reasoning",), ITEM_2),
    **_cells((*CORE, "moderate (local)", "CLI check", *CHAT), ("a.tool_call_flat",), ITEM_2),
    **_cells(LANGCHAIN, ("a.refusal", "a.refusal_and_content"), ITEM_2_LC),
    **_cells(("LlamaGuardRunnable (output) .stream", *STREAMS, "LlamaGuardMiddleware .stream(messages)"), ("a.stream_refusal",), ITEM_2_LC),
    **_cells(("LlamaGuardRunnable (output) .stream", *STREAMS), ("a.stream_dict_chunks", "a.stream_str_then_message", "b.opaque_chunk"), ITEM_3),
    **_cells(CHAT, ("a.refusal_and_content",), ITEM_4 + ": a refusal sent next to content"),
    **_cells(CHAT_STREAMS, ("a.stream_refusal",), ITEM_4 + ": a refusal streamed next to content"),
    **_cells(RESPONSES, ("b.responses_unknown_item",), ITEM_4 + ": an unknown Responses output item"),
    **_cells(RESPONSE_STREAMS, ("b.responses_truncated", "b.responses_failed"), ITEM_4 + ": text deltas with no finished item"),
    **_cells(("guard_tool(s)", *MIDDLEWARE), ("a.command_other_message",), ITEM_5 + ": a Command's non-tool messages"),
    **_cells(("guard_tool(s)",), ("b.tool_returns_set",), ITEM_5 + ": a plain-args call returning an object with .update"),
    **_cells(("LlamaGuardDecisionModel (AutoMode)",), ("c.threshold",), ITEM_6),
    **_cells(("moderate (local)",), ("b.part_type_list", "b.deep_arguments"), ITEM_9),
    **_cells(EVERYWHERE, ("c.out_of_range",), ITEM_7),
    **_cells(CLIENT, ("b.call_without_name",), NEW_NAMELESS),
    **_cells(CHAT_STREAMS, ("a.tool_call_custom",), NEW_CUSTOM_STREAM),
}


def hole(entry: str, case: str) -> str | None:
    """The known hole of this cell (``None``: the cell must pass)."""
    return KNOWN.get((entry, case)) or KNOWN.get((EVERYWHERE, case))
