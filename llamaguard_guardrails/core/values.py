"""Reading the values clients send, one helper per job: as a plain dict, as text for the model, known fields only.

Every adapter reads client values through these (core first, adapters import them), so a value is turned into
text, or refused, the same way whatever entry point it came through.

>>> json_text({"city": "Paris"}), json_text("as it is")
('{"city": "Paris"}', 'as it is')
>>> plain_dict({"role": "user"}, "message 0")
{'role': 'user'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import InvalidConversationError, shown_name


def plain_dict(value: Any, what: str) -> dict[str, Any]:
    """A dict, or a pydantic model as a dict without its ``None`` fields; anything else raises
    :class:`InvalidConversationError` naming ``what``."""
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    raise InvalidConversationError(
        f"{what} must be a dict (e.g. {{'role': 'user', 'content': '...'}}) or a pydantic model, "
        f"got {type(value).__name__}"
    )


def json_text(value: Any) -> str:
    """``value`` as the model reads it: a string as it is, anything else as JSON. Values JSON cannot hold (bytes,
    sets, objects) are written as their text, never dropped; a value JSON cannot write at all (circular, nested too
    deeply) raises :class:`InvalidConversationError`."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except TypeError:  # keys JSON cannot hold (e.g. tuples): the whole value as text
        return str(value)
    except (RecursionError, ValueError) as exc:
        raise InvalidConversationError(f"a value cannot be shown to the model as JSON: {exc}") from None


def reject_unknown_fields(mapping: Mapping[str, Any], known: frozenset[str] | set[str], where: str, what: str) -> None:
    """Raise :class:`InvalidConversationError` on a field (with a value) nobody reads here: whatever a model or tool
    might read must be shown to the guard."""
    for key, value in mapping.items():
        if value is not None and key not in known:
            raise InvalidConversationError(
                f"{where}: unknown field {shown_name(key)} in a {what}. A downstream model or tool may read it, so the guard "
                f"must see it or refuse it: remove it (fields read: {', '.join(sorted(known))})"
            )


__all__ = ["json_text", "plain_dict", "reject_unknown_fields"]
