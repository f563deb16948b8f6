"""Dataset moderation: one verdict per input row, in input order, locally or on a Ray cluster.

>>> from llamaguard_guardrails.scale import moderate
>>> moderate("chats.jsonl", "verdicts.jsonl", model="meta-llama/Llama-Guard-4-12B")  # doctest: +SKIP
>>> moderate("chats.parquet", "verdicts.parquet", model=M, engine="ray", num_workers=4)  # doctest: +SKIP

``engine="local"`` runs one guard in this process (``guard.classify_batch`` in batches).
``engine="ray"`` runs a Ray Data actor pool - one model per actor, batched calls - on a local Ray
instance (started for the run with ``num_cpus=num_workers``) or on a cluster (``ray_address``).
Both give identical rows (file formats: :mod:`.records`). A row that cannot be read or is not a
valid conversation gets an ``invalid`` row in its place; nothing is dropped and the run goes on.

Building blocks (``evaluate`` and your own scripts reuse them): :func:`.records.read_records` gives
:class:`.records.Record` s lazily; :func:`verdict_batches` turns them into batches of verdict rows
with either engine; :class:`.records.RowWriter` writes them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

from ..core.conversation import Conversation, parse_conversation
from ..core.errors import InvalidConversationError
from ..core.policy import Policy
from .records import MAX_LINE_BYTES, Record, RowWriter, count_records, describe_error, read_records

if TYPE_CHECKING:
    from ..core.verdict import Verdict
    from ..guard import LlamaGuard

log = logging.getLogger(__name__)

GuardFactory = Callable[[], "LlamaGuard"]
Engine = Literal["local", "ray"]


@dataclass(frozen=True)
class ModerationSummary:
    """What a :func:`moderate` run did."""

    input: str
    output: str
    engine: str
    rows: int
    safe: int
    unsafe: int
    errors: int
    invalid: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"{self.rows} rows -> {self.output} ({self.engine}, {self.seconds:.1f} s, {self.rows_per_second:.2f} rows/s): "
            f"{self.safe} safe, {self.unsafe} unsafe, {self.errors} guard errors, {self.invalid} invalid"
        )


# -- verdict rows (shared by both engines) -----------------------------------------------------------


def verdict_row(record: Record, verdict: Verdict) -> dict[str, Any]:
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


def failed_row(record: Record, error: str, policy: Policy) -> dict[str, Any]:
    """The guard failed on a valid row (e.g. its Ray actor died): the policy's fail mode decides."""
    fail_open = policy.fail_mode == "open"
    return {
        "line": record.line,
        "id": record.id,
        "status": "error",
        "safe": fail_open,
        "categories": [],
        "unsafe_probability": 0.0 if fail_open else 1.0,
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
            todo.append((i, parse_conversation(record.messages)))
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


# -- engines: batches of verdict rows, in input order --------------------------------------------------


class PretrainedFactory:
    """A picklable guard factory: ``LlamaGuard.from_pretrained(model, **options)``."""

    def __init__(self, model: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> None:
        self.model = str(model)
        self.options = dict(options or {})

    def __call__(self) -> LlamaGuard:
        from ..guard import LlamaGuard

        return LlamaGuard.from_pretrained(self.model, **self.options)


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


def verdict_batches(
    records: Iterable[Record],
    factory: GuardFactory,
    *,
    engine: Engine = "local",
    policy: Policy | None = None,
    batch_size: int = 8,
    num_workers: int = 2,
    ray_address: str | None = None,
    num_cpus_per_worker: float = 1.0,
    num_gpus_per_worker: float = 0.0,
) -> Iterator[list[dict[str, Any]]]:
    """Batches of verdict rows for ``records`` (one row each, in input order) from either engine.

    ``records`` is read lazily, a bounded number at a time; ``factory`` builds each guard (one here,
    or one per Ray actor) and the engine closes every guard it built, also when the caller stops early
    (close the returned generator, e.g. with ``contextlib.closing``).
    """
    policy = policy or Policy()
    if engine == "local":
        return local_batches(factory, records, policy=policy, batch_size=batch_size)
    if engine == "ray":
        from .ray_engine import ray_batches

        return ray_batches(
            factory,
            records,
            policy=policy,
            batch_size=batch_size,
            num_workers=num_workers,
            ray_address=ray_address,
            num_cpus_per_worker=num_cpus_per_worker,
            num_gpus_per_worker=num_gpus_per_worker,
        )
    raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")


# -- the run --------------------------------------------------------------------------------------------


def moderate(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    guard_factory: GuardFactory | None = None,
    engine: Engine = "local",
    num_workers: int = 2,
    batch_size: int = 8,
    policy: Policy | None = None,
    ray_address: str | None = None,
    num_cpus_per_worker: float = 1.0,
    num_gpus_per_worker: float = 0.0,
    guard_options: dict[str, Any] | None = None,
    progress: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ModerationSummary:
    """Moderate every conversation of ``input_path`` into ``output_path`` (JSONL or Parquet each).

    The guard is ``LlamaGuard.from_pretrained(model, **guard_options)`` or ``guard_factory()`` (a
    picklable zero-argument callable, e.g. ``functools.partial(from_vllm, URL, model=...)``); with
    the Ray engine, each actor builds its own. Every guard built is closed at the end. ``policy``
    defaults to the default :class:`Policy`.

    The output grows batch by batch. If the run stops early (Ctrl-C, a crash), the exception
    propagates with a note saying how many rows the output holds: the rows of lines 1 to N.
    """
    if (model is None) == (guard_factory is None):
        raise ValueError("pass exactly one of model= or guard_factory=")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if num_workers < 1 or batch_size < 1:
        raise ValueError("num_workers and batch_size must be >= 1")
    if num_cpus_per_worker <= 0 or num_gpus_per_worker < 0:
        raise ValueError("num_cpus_per_worker must be > 0 and num_gpus_per_worker >= 0")
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be >= 1")
    policy = policy or Policy()
    records = read_records(input_path, max_line_bytes=max_line_bytes)  # checks the input before any model loads
    writer = RowWriter(output_path, input_path=input_path)
    factory = guard_factory or PretrainedFactory(model, guard_options)  # type: ignore[arg-type]
    batches = verdict_batches(
        records,
        factory,
        engine=engine,
        policy=policy,
        batch_size=batch_size,
        num_workers=num_workers,
        ray_address=ray_address,
        num_cpus_per_worker=num_cpus_per_worker,
        num_gpus_per_worker=num_gpus_per_worker,
    )
    started = time.perf_counter()
    counts = dict.fromkeys(("safe", "unsafe", "error", "invalid"), 0)
    try:
        with writer, closing(batches), ExitStack() as stack:
            bar = None
            for batch in batches:
                if bar is None:  # after the first batch: model loading is not counted in rows/s
                    bar = stack.enter_context(_progress(count_records(input_path), progress, engine))
                writer.write(batch)
                bar.update(len(batch))
                for row in batch:
                    counts[row["status"]] += 1
    except BaseException as exc:  # Ctrl-C too: say what the output holds, then stop
        done = f"{output_path} holds the rows of lines 1-{writer.count}" if writer.count else "no row was written"
        exc.add_note(done)
        raise
    return ModerationSummary(
        input=str(input_path),
        output=str(output_path),
        engine=engine,
        rows=sum(counts.values()),
        safe=counts["safe"],
        unsafe=counts["unsafe"],
        errors=counts["error"],
        invalid=counts["invalid"],
        seconds=time.perf_counter() - started,
    )


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of ``size`` items (the last may be shorter), pulled lazily from ``items``."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *_: Any) -> None:
        pass


def _progress(total: int | None, enabled: bool, engine: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="row", desc=f"moderate ({engine})", dynamic_ncols=True)


__all__ = [
    "ModerationSummary",
    "PretrainedFactory",
    "chunks",
    "invalid_row",
    "local_batches",
    "moderate",
    "verdict_batches",
    "verdict_row",
    "verdict_rows",
]
