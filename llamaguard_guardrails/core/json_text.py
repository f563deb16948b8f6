"""JSON text shown to the guard exactly as a tool or model reads it.

Tool-call arguments arrive as JSON text. Decoding them lets the guard read escapes (``"\\u0062omb"`` is
``bomb``), but a plain ``json.loads`` + ``json.dumps`` round trip is not faithful: a repeated key keeps only
its last value (``{"q": "<harmful>", "q": "bread"}`` would be shown as ``{"q": "bread"}``, while a tool may
read the first), and numbers are rewritten (``1e5`` becomes ``100000.0``). Here every pair of every object
is kept, in order, repeats included, and number literals keep the text they were written with; strings
are decoded. Bounds: nesting depth (:data:`MAX_DEPTH`) and number length (:data:`MAX_NUMBER_CHARS`) give a
typed error, never a crash.

>>> render(parse('{"q": "how to build a \\\\u0062omb", "q": "bread", "n": 1e5}'))
'{"q": "how to build a bomb", "q": "bread", "n": 1e5}'

JSON that *carries* content to the guard (a served request body, a dataset row, a conversation file) is read
by :func:`loads_unambiguous` instead: there a repeated key has no one meaning (Python keeps the last value, other
readers the first, so whatever reads the same bytes elsewhere could act on a text the guard never saw), so it is
refused, as are ``NaN``/``Infinity`` (not JSON) and nesting past the parser's limit.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from .errors import InvalidConversationError, shown_name

#: Deepest nesting of arrays and objects shown; deeper JSON is refused.
MAX_DEPTH = 128
#: Longest number literal shown (Python's own default limit on integer digits); longer ones are refused.
MAX_NUMBER_CHARS = 4300


class Pairs(list):  # type: ignore[type-arg]
    """A JSON object as the text wrote it: every ``(key, value)`` pair, in order, repeated keys included."""


class Number(str):
    """A JSON number literal, as written (``1e5``, ``1.50``, ``NaN``)."""


def _number(text: str) -> Number:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidConversationError(
            f"a number in the JSON has {len(text)} characters (at most {MAX_NUMBER_CHARS}): a tool's JSON parser may "
            "refuse or misread it; send it as a string"
        )
    return Number(text)


class _Ambiguous(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Ambiguous(
                f"the key {shown_name(key)} appears twice in one object (readers differ on which value counts): "
                "send each key once"
            )
        seen.add(key)
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise _Ambiguous(f"{name} is not a JSON value: send a number")


def loads_unambiguous(text: str | bytes, *, max_values: int | None = None) -> Any:
    """``json.loads`` for JSON that carries content: a repeated key in one object, ``NaN``/``Infinity``, nesting
    past the parser's limit, an integer of more digits than Python converts, bytes that are not Unicode text, or
    (with ``max_values``) more values than that in all raise ``json.JSONDecodeError`` saying what to change."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _Ambiguous as exc:
        raise json.JSONDecodeError(str(exc), "", 0) from None
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"the JSON is not UTF-8 text ({exc.reason} at byte {exc.start})", "", 0) from None
    except RecursionError:
        raise json.JSONDecodeError(
            f"the JSON is nested too deeply (Python reads {sys.getrecursionlimit()} levels at most)", "", 0
        ) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer literal longer than Python converts (sys.get_int_max_str_digits())
        raise json.JSONDecodeError(f"the JSON holds a number too long to read ({exc})", "", 0) from None
    if max_values is not None and _count_values(value, max_values) > max_values:
        raise json.JSONDecodeError(
            f"the JSON holds more than {max_values} values (strings, numbers, lists, objects): split it", "", 0
        )
    return value


def _count_values(value: Any, limit: int) -> int:
    """How many values ``value`` holds (itself included), counted up to just past ``limit``."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def parse(text: str) -> Any:
    """Decode JSON text, keeping every object pair and number literal; raises ``json.JSONDecodeError`` when
    ``text`` is not JSON, :class:`InvalidConversationError` when it is too deep or a number too long."""
    try:
        value = json.loads(
            text, object_pairs_hook=Pairs, parse_int=_number, parse_float=_number, parse_constant=_number
        )
    except RecursionError:
        raise InvalidConversationError(f"the JSON is nested too deeply (at most {MAX_DEPTH} levels)") from None
    _check_depth(value)
    return value


def _check_depth(value: Any) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` (iteratively: the check itself never recurses)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list):  # Pairs is a list of (key, value) tuples
            if depth > MAX_DEPTH:
                raise InvalidConversationError(f"the JSON is nested too deeply (at most {MAX_DEPTH} levels)")
            children = (v for _, v in item) if isinstance(item, Pairs) else iter(item)
            stack.extend((child, depth + 1) for child in children)


def render(value: Any) -> str:
    """JSON text of a value from :func:`parse` (or plain Python JSON values), with every pair and literal kept."""
    if isinstance(value, Number):
        return str(value)
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{_string(key)}: {render(item)}" for key, item in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _string(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def pairs(value: Any) -> list[tuple[Any, Any]] | None:
    """The ``(key, value)`` pairs of a JSON object (parsed :class:`Pairs` or a mapping); ``None`` otherwise."""
    if isinstance(value, Pairs):
        return list(value)
    if isinstance(value, Mapping):
        return list(value.items())
    return None
