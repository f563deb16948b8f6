"""What a guarded client lets through: an allow-list of attributes and of request fields.

Every attribute path of a wrapped client is **guarded** (its requests and answers are checked), **harmless**
(it neither makes a model generate nor returns generated content), or refused with
:class:`UnguardedAttributeError` — whatever this table does not name, including a method a new SDK release adds.
Every request field of a guarded method is **shown** to the guard, **harmless** (no content the model reads), or
refused with ``InvalidConversationError``; ``extra_body`` is read as request fields, since the SDK merges it into
the body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..core.errors import GuardError, InvalidConversationError


class UnguardedAttributeError(GuardError, AttributeError):
    """A guarded client has no such attribute: it is not known to be harmless, and the guard cannot check it."""


#: Attribute paths whose ``create`` is checked, by the API that reads them.
GUARDED: dict[tuple[str, ...], str] = {
    ("chat", "completions", "create"): "chat",
    ("responses", "create"): "responses",
    ("completions", "create"): "completions",
}
#: Resources on the way to a guarded method.
RESOURCES = frozenset(
    {("chat",), ("chat", "completions"), ("responses",), ("completions",), ("models",), ("conversations",)}
)
#: Methods passed through when their request holds only these fields: nothing a model reads, now or later
#: (``conversations.create`` with ``items`` would store unchecked turns that a later ``conversation=`` sends).
PLAIN_CALLS: dict[tuple[str, ...], frozenset[str]] = {("conversations", "create"): frozenset({"metadata"})}
#: Attributes passed through unchanged: they neither make a model generate nor return generated content.
HARMLESS = frozenset(
    {
        ("models", "list"),
        ("models", "retrieve"),
        ("close",),
        ("is_closed",),
        ("base_url",),
        ("timeout",),
        ("max_retries",),
        ("organization",),
        ("project",),
    }
)
#: Attributes that return a new client with other options: it is wrapped with the same guard.
REWRAPPED = frozenset({"with_options", "copy"})


def refuse_attribute(path: tuple[str, ...]) -> UnguardedAttributeError:
    """The typed refusal of an attribute path the allow-list does not name."""
    dotted = ".".join(path)
    guarded = ", ".join(".".join(p) for p in GUARDED)
    return UnguardedAttributeError(
        f"{dotted} is not available on a guarded client: the client-side guard checks only {guarded} "
        "(models.list/retrieve and close pass through). Call it on the unwrapped client (guarded.unwrapped) "
        "if you mean to skip the checks"
    )


#: Options of the SDK call, not of the request body (they carry no content the model reads).
CALL_OPTIONS = frozenset({"extra_headers", "extra_query", "timeout", "_request_timeout", "_headers"})

_SAMPLING = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "n",
        "seed",
        "stop",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "max_tokens",
        "user",
        "metadata",
        "service_tier",
        "store",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
    }
)

#: Per API: the fields read into the checked messages (``messages``, ``input`` ...), the fields shown to the guard
#: as context before them (tool definitions, output schemas, predicted output), and the harmless fields.
READ: dict[str, frozenset[str]] = {
    "chat": frozenset({"messages"}),
    "responses": frozenset({"input", "instructions"}),
    "completions": frozenset({"prompt"}),
}
SHOWN: dict[str, tuple[str, ...]] = {
    "chat": ("tools", "functions", "response_format", "prediction"),
    "responses": ("tools", "text"),
    "completions": (),
}
HARMLESS_FIELDS: dict[str, frozenset[str]] = {
    "chat": _SAMPLING
    | {
        "logprobs",  # the tokens of the checked text (top_logprobs, the tokens not chosen, are refused)
        "max_completion_tokens",
        "tool_choice",
        "function_call",
        "parallel_tool_calls",
        "reasoning_effort",
        "verbosity",
    },
    "responses": _SAMPLING
    | {
        "max_output_tokens",
        "max_tool_calls",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "truncation",
        "include",
        "background",
        "previous_response_id",
        "conversation",
    },
    "completions": _SAMPLING | {"best_of", "echo"},
}


def plain_fields(path: tuple[str, ...], kwargs: Mapping[str, Any]) -> None:
    """Raise unless the request of a :data:`PLAIN_CALLS` method holds only its harmless fields."""
    _body(kwargs, PLAIN_CALLS[path], ".".join(path))


def request_fields(api: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request body fields of a call (``extra_body`` merged in, as the SDK sends it); unknown ones raise."""
    return _body(kwargs, READ[api] | set(SHOWN[api]) | HARMLESS_FIELDS[api], ".".join(_path(api)))


#: Request fields the SDK itself acts on (how it reads the answer), so they must be its arguments, never only in
#: ``extra_body``: there the upstream would stream while the SDK (and the guard) read one answer, or the reverse.
SDK_FIELDS = frozenset({"stream"})


def _body(kwargs: Mapping[str, Any], known: frozenset[str] | set[str], where: str) -> dict[str, Any]:
    fields = {k: v for k, v in kwargs.items() if k not in CALL_OPTIONS and k != "extra_body" and given(v)}
    extra = kwargs.get("extra_body")
    if given(extra):
        if not isinstance(extra, Mapping):
            raise InvalidConversationError(f"extra_body must be a dict, got {type(extra).__name__}")
        extra = {k: v for k, v in extra.items() if given(v)}
        acted_on = sorted(set(extra) & SDK_FIELDS)
        if acted_on:
            raise InvalidConversationError(
                f"{where}: extra_body sets {acted_on}, which the SDK acts on only as an argument: it would send one "
                "value and read the answer as the other. Pass it as an argument"
            )
        fields.update(extra)  # the SDK sends extra_body's value of a field given twice: that value is checked
    unknown = sorted(k for k in fields if k not in known)
    if unknown:
        raise InvalidConversationError(
            f"{where} got request field(s) {unknown}, which the client-side guard cannot show to "
            f"the guard; nothing was sent (fields read: {', '.join(sorted(known))})"
        )
    return fields


def given(value: Any) -> bool:
    """Whether a request value was given (not ``None`` nor the openai SDK's ``NOT_GIVEN`` / ``omit`` markers)."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def shown_context(api: str, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fields the model reads beside the messages (tool definitions, schemas ...), as system messages."""
    return [
        {"role": "system", "content": f"[{name}] {_as_text(fields[name])}"}
        for name in SHOWN[api]
        if fields.get(name) not in (None, "", [], {})
    ]


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_dump)


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    raise InvalidConversationError(f"a request field holds a {type(value).__name__}, which cannot be shown")


def _path(api: str) -> tuple[str, ...]:
    return next(path for path, name in GUARDED.items() if name == api)
