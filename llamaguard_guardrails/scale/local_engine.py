"""The in-process engine: one guard checks records in batches and gives one verdict row each, in order.

:func:`verdict_rows` is the check every engine runs (a Ray actor runs it on its own guard);
:func:`local_batches` runs it in this process. Row fields: :mod:`.records`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from ..core.conversation import Conversation, parse_conversation
from ..core.errors import InvalidConversationError
from ..core.policy import Policy
from .records import Record, describe_error

if TYPE_CHECKING:
    from ..core.verdict import Verdict
    from ..guard import LlamaGuard

log = logging.getLogger(__name__)

GuardFactory = Callable[[], "LlamaGuard"]


class PretrainedFactory:
    """A picklable guard factory: ``LlamaGuard.from_pretrained(model, **options)``."""

    def __init__(self, model: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> None:
        self.model = str(model)
        self.options = dict(options or {})

    def __call__(self) -> LlamaGuard:
        from ..guard import LlamaGuard

        return LlamaGuard.from_pretrained(self.model, **self.options)


def verdict_row(record: Record, verdict: Verdict) -> dict[str, Any]:
    """The output row of a checked record."""
    return {
        "line": record.line,
        "id": record.id,
        "status": verdict.status,
        "safe": verdict.safe,
        "categories": list(verdict.categories),
        "unsafe_probability": verdict.unsafe_probability,
        "error": verdict.error,
    }


def invalid_row(record: Record, error: str) -> dict[str, Any]:
    """A row that could not be checked: ``safe`` is null, never true."""
    return {
        "line": record.line,
        "id": record.id,
        "status": "invalid",
        "safe": None,
        "categories": [],
        "unsafe_probability": None,
        "error": error,
    }


def verdict_rows(guard: LlamaGuard, records: Sequence[Record], policy: Policy, batch_size: int) -> list[dict[str, Any]]:
    """Verdict rows for ``records``, one each, in order: batched checks, bad rows reported in their place.

    Never raises for a row: any exception while reading, parsing or checking one (even a
    ``RecursionError`` or ``MemoryError``) gives that row an ``invalid`` row with the error text.
    """
    rows: list[dict[str, Any] | None] = [None] * len(records)
    todo: list[tuple[int, Conversation]] = []
    for i, record in enumerate(records):
        if record.error is not None:
            rows[i] = invalid_row(record, record.error)
            continue
        try:
            todo.append((i, parse_conversation(record.messages, image_limits=getattr(guard, "image_limits", None))))
        except Exception as exc:  # noqa: BLE001 - a hostile row is invalid; the run goes on
            rows[i] = invalid_row(record, describe_error(exc))
    if todo:
        try:
            verdicts = guard.classify_batch([c for _, c in todo], policy=policy, batch_size=batch_size)
            for (i, _), verdict in zip(todo, verdicts, strict=True):
                rows[i] = verdict_row(records[i], verdict)
        except Exception:  # noqa: BLE001 - one bad conversation must not sink its batch: check one by one
            for i, conversation in todo:
                rows[i] = _one_row(guard, records[i], conversation, policy)
    return [row for row in rows if row is not None]


def _one_row(guard: LlamaGuard, record: Record, conversation: Conversation, policy: Policy) -> dict[str, Any]:
    try:
        return verdict_row(record, guard.classify(conversation, policy=policy))
    except Exception as exc:  # noqa: BLE001 - reported in the row (never safe), the run goes on
        if not isinstance(exc, InvalidConversationError):
            log.warning("line %d: check failed: %s", record.line, describe_error(exc))
        return invalid_row(record, describe_error(exc))


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of ``size`` items (the last may be shorter), pulled lazily from ``items``."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def local_batches(
    factory: GuardFactory, records: Iterable[Record], *, policy: Policy, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Verdict rows, ``batch_size`` records at a time, from one guard in this process (closed at the end)."""
    guard = factory()
    try:
        for chunk in chunks(records, batch_size):
            yield verdict_rows(guard, chunk, policy, batch_size)
    finally:
        guard.close()


__all__ = [
    "GuardFactory",
    "PretrainedFactory",
    "chunks",
    "invalid_row",
    "local_batches",
    "verdict_row",
    "verdict_rows",
]
