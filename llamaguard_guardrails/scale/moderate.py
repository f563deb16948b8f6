"""Dataset moderation: one verdict per input row, in input order, locally or on a Ray cluster.

>>> from llamaguard_guardrails.scale import moderate
>>> moderate("chats.jsonl", "verdicts.jsonl", model="meta-llama/Llama-Guard-4-12B")  # doctest: +SKIP
>>> moderate("chats.parquet", "verdicts.parquet", model=M, engine="ray", num_workers=4)  # doctest: +SKIP

``engine="local"`` runs one guard in this process (``guard.classify_batch`` in batches).
``engine="ray"`` runs a Ray Data actor pool - one model per actor, batched calls - on a local Ray
instance (started for the run with ``num_cpus=num_workers``) or on a cluster (``ray_address``).
Both give identical rows (file formats: :mod:`.records`). A row that cannot be read or is not a
valid conversation gets an ``invalid`` row in its place; nothing is dropped and the run goes on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

from ..core.conversation import parse_conversation
from ..core.errors import InvalidConversationError
from ..core.policy import Policy
from .records import Record, RowWriter, count_records, read_records

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


def failed_row(record: Record, exc: BaseException, policy: Policy) -> dict[str, Any]:
    """An unexpected failure while checking a valid conversation: the policy's fail mode decides."""
    fail_open = policy.fail_mode == "open"
    return {
        "line": record.line,
        "id": record.id,
        "status": "error",
        "safe": fail_open,
        "categories": [],
        "unsafe_probability": 0.0 if fail_open else 1.0,
        "error": f"{type(exc).__name__}: {exc}",
    }


def verdict_rows(guard: LlamaGuard, records: Sequence[Record], policy: Policy, batch_size: int) -> list[dict[str, Any]]:
    """Verdict rows for ``records``, in order: batched checks, bad rows reported in their place."""
    rows: list[dict[str, Any] | None] = [None] * len(records)
    todo: list[tuple[int, Any]] = []
    for i, record in enumerate(records):
        if record.error is not None:
            rows[i] = invalid_row(record, record.error)
            continue
        try:
            todo.append((i, parse_conversation(record.messages)))
        except InvalidConversationError as exc:
            rows[i] = invalid_row(record, str(exc))
    if todo:
        try:
            verdicts = guard.classify_batch([c for _, c in todo], policy=policy, batch_size=batch_size)
            for (i, _), verdict in zip(todo, verdicts):
                rows[i] = verdict_row(records[i], verdict)
        except Exception:  # noqa: BLE001 - one bad conversation must not sink its batch: check one by one
            for i, conversation in todo:
                rows[i] = _one_row(guard, records[i], conversation, policy)
    return [r for r in rows if r is not None]


def _one_row(guard: LlamaGuard, record: Record, conversation: Any, policy: Policy) -> dict[str, Any]:
    try:
        return verdict_row(record, guard.classify(conversation, policy=policy))
    except InvalidConversationError as exc:
        return invalid_row(record, str(exc))
    except Exception as exc:  # reported in the row, the run goes on
        log.exception("line %d: check failed", record.line)
        return failed_row(record, exc, policy)


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
) -> ModerationSummary:
    """Moderate every conversation of ``input_path`` into ``output_path`` (JSONL or Parquet each).

    The guard is ``LlamaGuard.from_pretrained(model, **guard_options)`` or ``guard_factory()`` (a
    picklable zero-argument callable, e.g. ``functools.partial(from_vllm, URL, model=...)``); with
    the Ray engine, each actor builds its own. ``policy`` defaults to the default :class:`Policy`.
    """
    if (model is None) == (guard_factory is None):
        raise ValueError("pass exactly one of model= or guard_factory=")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if num_workers < 1 or batch_size < 1:
        raise ValueError("num_workers and batch_size must be >= 1")
    policy = policy or Policy()
    records = read_records(input_path)  # checks the input before any model is loaded
    total = count_records(input_path)
    factory = guard_factory or _pretrained_factory(model, guard_options or {})
    started = time.perf_counter()
    counts = {"safe": 0, "unsafe": 0, "error": 0, "invalid": 0}
    with RowWriter(output_path) as writer, _progress(total, progress, engine) as bar:
        if engine == "local":
            rows = _local_rows(factory, records, policy, batch_size)
        else:
            from .ray_engine import ray_rows

            rows = ray_rows(
                factory,
                records,
                policy=policy,
                batch_size=batch_size,
                num_workers=num_workers,
                ray_address=ray_address,
                num_cpus_per_worker=num_cpus_per_worker,
                num_gpus_per_worker=num_gpus_per_worker,
            )
        for chunk in _chunks(in_order(rows), 256):
            writer.write(chunk)
            for row in chunk:
                counts[row["status"]] += 1
            bar.update(len(chunk))
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


class _PretrainedFactory:
    """Picklable ``LlamaGuard.from_pretrained(model, **options)``."""

    def __init__(self, model: str | os.PathLike[str], options: dict[str, Any]) -> None:
        self.model = str(model)
        self.options = options

    def __call__(self) -> LlamaGuard:
        from ..guard import LlamaGuard

        return LlamaGuard.from_pretrained(self.model, **self.options)


def _pretrained_factory(model: Any, options: dict[str, Any]) -> GuardFactory:
    return _PretrainedFactory(model, options)


def _local_rows(factory: GuardFactory, records: Iterable[Record], policy: Policy, batch_size: int) -> Iterator[dict]:
    guard = factory()
    try:
        for chunk in _chunks(records, batch_size):
            yield from verdict_rows(guard, chunk, policy, batch_size)
    finally:
        guard.close()


def in_order(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Rows sorted by ``line`` as they stream in (engines already keep order; this guarantees it)."""
    pending: dict[int, dict[str, Any]] = {}
    expected = 1
    for row in rows:
        pending[row["line"]] = row
        while expected in pending:
            yield pending.pop(expected)
            expected += 1
    if pending:  # lines missing upstream would be a bug: still write everything, in order
        log.error("rows for lines before %s never arrived", min(pending))
        yield from (pending[k] for k in sorted(pending))


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
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


__all__ = ["ModerationSummary", "invalid_row", "moderate", "verdict_row", "verdict_rows"]
