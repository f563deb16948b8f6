"""Ray Data engine: Llama Guard 4 as an actor pool, one model per actor, batched calls.

:class:`GuardPredictor` is public, for your own Ray Data pipelines::

    import ray
    from llamaguard_guardrails.scale import GuardPredictor

    ds = ray.data.read_parquet("s3://bucket/chats/")           # a "messages" column (JSON text or lists)
    verdicts = ds.map_batches(
        GuardPredictor,
        fn_constructor_kwargs={"model": "meta-llama/Llama-Guard-4-12B", "policy": {"threshold": 0.4}},
        concurrency=4,            # actors = model copies
        num_gpus=1,               # per actor (leave out on CPU)
        batch_size=16,
        batch_format="pyarrow",
    )
    verdicts.write_parquet("s3://bucket/verdicts/")

Each output batch holds the input's columns except ``messages``, plus ``status``, ``safe``,
``categories``, ``unsafe_probability`` and ``error`` (see :mod:`.records`). A row whose messages
cannot be read, or whose input ``error`` column is already set, becomes an ``invalid`` row.
Ray Data drops its actors without calling anything: the guard is closed when the predictor is
garbage-collected; call ``close()`` (or use it as a context manager) when you own it.

``moderate(engine="ray")`` does not go through Ray Data: :func:`ray_batches` reads the input in the
driver, a bounded number of batches ahead, and sends them to :class:`GuardActor` s (one guard each),
so any input size streams through, bad lines stay in place and the output keeps the input order.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.decision import failure_verdict
from ..core.errors import GuardError
from ..core.policy import Policy
from .local_engine import GuardFactory, PretrainedFactory, chunks, invalid_row, verdict_row, verdict_rows
from .records import Record, describe_error, parquet_record

if TYPE_CHECKING:
    import pyarrow as pa

    from ..guard import LlamaGuard

log = logging.getLogger(__name__)

VERDICT_COLUMNS = ("status", "safe", "categories", "unsafe_probability", "error")
LOCAL_OBJECT_STORE_BYTES = 1 << 30


def _verdict_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("status", pa.string()),
            ("safe", pa.bool_()),
            ("categories", pa.list_(pa.string())),
            ("unsafe_probability", pa.float64()),
            ("error", pa.string()),
        ]
    )


def _plain(value: Any) -> Any:
    """numpy arrays/scalars (Ray's numpy batch format) -> plain Python, recursively."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _columns(batch: Any) -> dict[str, list[Any]]:
    """A batch (pyarrow Table, pandas DataFrame, dict of columns) as plain Python lists per column.

    Cells are read one by one, never typed as a column first: one row whose ``messages`` is a number
    in a column of JSON text must become that row's ``invalid`` row, not an Arrow error for the batch.
    """
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        return {name: batch.column(name).to_pylist() for name in batch.column_names}
    if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas
        return {str(name): [_plain_cell(v) for v in batch[name].tolist()] for name in batch.columns}
    if isinstance(batch, Mapping):
        return {str(name): [_plain_cell(v) for v in column] for name, column in batch.items()}
    raise TypeError(f"GuardPredictor takes a pyarrow Table, a pandas DataFrame or a dict of columns, not {type(batch)}")


class _Unreadable:
    """A cell that cannot be made plain Python (nested too deeply, a failing ``tolist``): that row's problem."""

    def __init__(self, exc: BaseException) -> None:
        self.error = describe_error(exc)

    def __repr__(self) -> str:
        return f"<unreadable cell: {self.error}>"


def _plain_cell(value: Any) -> Any:
    """One cell as plain Python; a cell that cannot be read is an :class:`_Unreadable` in its place, so it fails
    only its own row (never the batch)."""
    try:
        return _plain(value)
    except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError, a hostile tolist(): this row only
        return _Unreadable(exc)


def _arrow_column(values: list[Any]) -> pa.Array:
    """A kept input column as Arrow; one Arrow cannot type (mixed kinds of values) is kept as JSON text."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array([_json_text(v) for v in values], type=pa.string())


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except Exception:  # noqa: BLE001 - nested too deeply or unencodable: still one cell, never the batch
        return repr(value)[:1000]


def _cell_error(value: Any) -> str | None:
    """An input ``error`` cell as text (None when the row has no error)."""
    return None if value is None else value if isinstance(value, str) else _json_text(value)


class GuardPredictor:
    """A callable class for ``ray.data.Dataset.map_batches``: one guard per actor.

    ``model``: folder or Hugging Face id for ``LlamaGuard.from_pretrained`` (``guard_options`` go
    there), or ``guard_factory``: a picklable zero-argument callable returning a ``LlamaGuard``
    (e.g. ``functools.partial(from_vllm, URL, model=...)``). ``policy``: a :class:`Policy` or a dict
    of its fields. ``batch_size``: prompts per forward pass inside the actor.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        guard_factory: GuardFactory | None = None,
        policy: Policy | Mapping[str, Any] | None = None,
        batch_size: int = 8,
        guard_options: Mapping[str, Any] | None = None,
    ) -> None:
        if (model is None) == (guard_factory is None):
            raise ValueError("pass exactly one of model= or guard_factory=")
        factory = guard_factory or PretrainedFactory(model, guard_options)
        self.guard = factory()
        self.policy = policy if isinstance(policy, Policy) else Policy(**dict(policy or {}))
        self.batch_size = batch_size

    def __call__(self, batch: Any) -> pa.Table:
        import pyarrow as pa

        columns = _columns(batch)
        if self.guard is None:
            raise RuntimeError("this GuardPredictor is closed")
        if "messages" not in columns:
            raise ValueError(f"GuardPredictor needs a 'messages' column; the batch has {list(columns)}")
        messages = columns["messages"]
        errors = columns.get("error", [None] * len(messages))
        lines = columns.get("line", list(range(len(messages))))
        records = [_record(line, value, _cell_error(error)) for line, value, error in zip(lines, messages, errors)]
        rows = verdict_rows(self.guard, records, self.policy, self.batch_size)
        kept = {
            name: _arrow_column(values)
            for name, values in columns.items()
            if name not in ("messages", *VERDICT_COLUMNS)
        }
        verdicts = {
            name: pa.array([row[name] for row in rows], type=_verdict_schema().field(name).type)
            for name in VERDICT_COLUMNS
        }
        return pa.table({**kept, **verdicts})

    def close(self) -> None:
        """Close the guard (frees its model); the predictor cannot be used afterwards."""
        guard, self.guard = getattr(self, "guard", None), None
        if guard is not None:
            guard.close()

    def __enter__(self) -> GuardPredictor:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __del__(self) -> None:  # Ray Data never calls close(): free the model when the actor drops it
        self.close()


def _record(line: int, value: Any, error: str | None) -> Record:
    """A ``messages`` cell as a Record, read as a Parquet cell is (JSON text or lists of message structs)."""
    if error is not None:
        return Record(line, error=error)
    value = _plain_cell(value)
    if isinstance(value, _Unreadable):
        return Record(line, error=value.error)
    return parquet_record(line, value)


# -- the engine behind moderate(engine="ray") ---------------------------------------------------------


def _init_ray(ray_address: str | None, num_cpus: float) -> bool:
    """Connect to ``ray_address`` or start a light local instance; True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if ray_address:
        ray.init(address=ray_address, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=max(1, int(num_cpus + 0.999)),
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            logging_level=logging.WARNING,
        )
    return True


Cells = list[tuple[int, "str | None", "str | None"]]
"""What goes to an actor per batch: (line, messages as JSON text, error) - flat strings, cheap to ship."""


class GuardActor:
    """A Ray actor holding one guard: ``load()``, then ``predict(cells)`` per batch, ``close()`` at the end."""

    def __init__(self, factory: GuardFactory, policy: Policy, batch_size: int) -> None:
        self.factory, self.policy, self.batch_size = factory, policy, batch_size
        self.guard: LlamaGuard | None = None

    def load(self) -> None:
        self.guard = self.factory()

    def predict(self, cells: Cells) -> list[dict[str, Any]]:
        """Verdict rows (``id`` left null: the driver has it) for one batch, in order."""
        if self.guard is None:
            raise RuntimeError("GuardActor.predict before load() or after close()")
        return verdict_rows(self.guard, [_decoded(*cell) for cell in cells], self.policy, self.batch_size)

    def close(self) -> None:
        guard, self.guard = self.guard, None
        if guard is not None:
            guard.close()


def _decoded(line: int, text: str | None, error: str | None) -> Record:
    if error is not None:
        return Record(line, error=error)
    try:
        return Record(line, messages=json.loads(text or "null"))
    except Exception as exc:  # noqa: BLE001 - never reached for text the driver encoded; still an invalid row
        return Record(line, error=describe_error(exc))


def _cells(records: list[Record]) -> Cells:
    """Records as flat JSON text for an actor (a row that cannot be encoded becomes invalid here)."""
    cells: Cells = []
    for r in records:
        if r.error is not None:
            cells.append((r.line, None, r.error))
            continue
        try:
            cells.append((r.line, json.dumps(r.messages, ensure_ascii=False), None))
        except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError, unencodable values: invalid
            cells.append((r.line, None, describe_error(exc)))
    return cells


@dataclass
class _Pool:
    """Ray actors, the batches in flight (oldest first), and each actor's share of them."""

    actors: list[Any]
    in_flight: deque[tuple[Any, int, list[Record]]] = field(default_factory=deque)
    loads: list[int] = field(default_factory=list)
    alive: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.loads = [0] * len(self.actors)
        self.alive = set(range(len(self.actors)))

    def submit(self, batch: list[Record]) -> None:
        index = min(self.alive, key=lambda i: (self.loads[i], i))
        self.loads[index] += 1
        cells = _cells(batch)
        # What the driver keeps: line, id and why a row cannot be read - not the messages.
        keys = [Record(r.line, r.id, error=error) for r, (_, _, error) in zip(batch, cells)]
        self.in_flight.append((self.actors[index].predict.remote(cells), index, keys))

    def oldest(self, policy: Policy) -> list[dict[str, Any]]:
        """The rows of the oldest batch in flight (waits for it): order is submission order."""
        import ray

        future, index, batch = self.in_flight.popleft()
        self.loads[index] -= 1
        try:
            rows = ray.get(future)
        except ray.exceptions.RayActorError as exc:  # the actor died (out of memory, killed): its batches fail
            self.alive.discard(index)
            log.error("Ray actor %d died; %d actors left: %s", index, len(self.alive), _first_line(exc))
            if not self.alive:
                raise GuardError(f"every Ray actor died; the last error: {_first_line(exc)}") from exc
            return _failed_rows(batch, f"the Ray actor died: {_first_line(exc)}", policy)
        except ray.exceptions.RayTaskError as exc:  # a bug, not a row: the guard failed on this batch
            return _failed_rows(batch, describe_error(exc.cause), policy)
        for row, record in zip(rows, batch, strict=True):
            row["id"] = record.id
        return rows


def _failed_rows(batch: list[Record], error: str, policy: Policy) -> list[dict[str, Any]]:
    """The guard failed on this batch: the policy's fail mode decides each row (logged), except a row
    that could not be read, which stays ``invalid`` (never safe, whatever the fail mode)."""
    return [
        invalid_row(r, r.error) if r.error is not None else verdict_row(r, failure_verdict(error, policy))
        for r in batch
    ]


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def ray_batches(
    factory: GuardFactory,
    records: Iterable[Record],
    *,
    policy: Policy,
    batch_size: int,
    num_workers: int,
    ray_address: str | None = None,
    num_cpus_per_worker: float = 1.0,
    num_gpus_per_worker: float = 0.0,
    batches_per_worker: int = 2,
) -> Iterator[list[dict[str, Any]]]:
    """Verdict rows for ``records`` from ``num_workers`` Ray actors (one guard each), batch by batch, in order.

    Streams: at most ``num_workers * batches_per_worker`` batches are in flight, so the driver holds
    ``(num_workers * batches_per_worker + 1) * batch_size`` records at most, whatever the input size.
    Rows travel as JSON text. A batch whose actor died gets ``error`` rows (the fail mode decides);
    the run stops only when every actor is gone. Actors close their guards and are removed at the end.
    """
    import ray

    started_ray = _init_ray(ray_address, num_workers * num_cpus_per_worker)
    actors: list[Any] = []
    try:
        actor_class = ray.remote(num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker)(GuardActor)
        actors.extend(actor_class.remote(factory, policy, batch_size) for _ in range(num_workers))
        _get_or_raise_cause([actor.load.remote() for actor in actors])
        pool = _Pool(actors)
        window = num_workers * max(1, batches_per_worker)
        for batch in chunks(records, batch_size):
            while len(pool.in_flight) >= window:
                yield pool.oldest(policy)
            pool.submit(batch)
        while pool.in_flight:
            yield pool.oldest(policy)
        _get_or_raise_cause([actors[i].close.remote() for i in pool.alive])
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_ray:
            ray.shutdown()


def _get_or_raise_cause(futures: list[Any]) -> list[Any]:
    """``ray.get``, raising a remote exception as itself (e.g. ``ModelNotFoundError``), not wrapped."""
    import ray

    try:
        return ray.get(futures)
    except ray.exceptions.RayTaskError as exc:
        log.debug("remote failure: %s", exc)
        raise exc.cause from None


__all__ = ["GuardActor", "GuardPredictor", "ray_batches"]
