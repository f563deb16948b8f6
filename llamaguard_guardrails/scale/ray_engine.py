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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..core.policy import Policy
from .moderate import GuardFactory, _chunks, _PretrainedFactory, verdict_rows
from .records import Record, _drop_nulls, parse_jsonl_line

if TYPE_CHECKING:
    import pyarrow as pa

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


def _as_table(batch: Any) -> pa.Table:
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        return batch
    if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas
        return pa.Table.from_pandas(batch, preserve_index=False)
    if isinstance(batch, Mapping):
        return pa.table({name: pa.array([_plain(v) for v in column]) for name, column in batch.items()})
    raise TypeError(f"GuardPredictor takes a pyarrow Table, a pandas DataFrame or a dict of columns, not {type(batch)}")


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
        factory = guard_factory or _PretrainedFactory(model, dict(guard_options or {}))
        self.guard = factory()
        self.policy = policy if isinstance(policy, Policy) else Policy(**dict(policy or {}))
        self.batch_size = batch_size

    def __call__(self, batch: Any) -> pa.Table:
        import pyarrow as pa

        table = _as_table(batch)
        if "messages" not in table.column_names:
            raise ValueError(f"GuardPredictor needs a 'messages' column; the batch has {table.column_names}")
        messages = table.column("messages").to_pylist()
        errors = table.column("error").to_pylist() if "error" in table.column_names else [None] * table.num_rows
        lines = table.column("line").to_pylist() if "line" in table.column_names else list(range(table.num_rows))
        records = [_record(line, value, error) for line, value, error in zip(lines, messages, errors)]
        rows = verdict_rows(self.guard, records, self.policy, self.batch_size)
        verdicts = pa.table({name: [row[name] for row in rows] for name in VERDICT_COLUMNS}, schema=_verdict_schema())
        kept = table.drop_columns([c for c in ("messages", *VERDICT_COLUMNS) if c in table.column_names])
        for name in VERDICT_COLUMNS:
            kept = kept.append_column(verdicts.schema.field(name), verdicts.column(name))
        return kept

    def __del__(self) -> None:
        guard = getattr(self, "guard", None)
        if guard is not None:
            guard.close()


def _record(line: int, value: Any, error: str | None) -> Record:
    if error is not None:
        return Record(line, error=error)
    if value is None:
        return Record(line, error="the messages cell is null")
    if isinstance(value, str):  # JSON text: a list of messages, {"messages": [...]}, or a string
        return parse_jsonl_line(line, value)
    return Record(line, messages=_drop_nulls(_plain(value)))


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


def _input_tables(records: Iterable[Record], rows_per_block: int) -> Iterator[pa.Table]:
    """Records as Arrow tables: line, id (as JSON text, to keep its type), messages (JSON text), error."""
    import pyarrow as pa

    schema = pa.schema(
        [("line", pa.int64()), ("id_json", pa.string()), ("messages", pa.string()), ("error", pa.string())]
    )
    for chunk in _chunks(records, rows_per_block):
        yield pa.table(
            {
                "line": [r.line for r in chunk],
                "id_json": [None if r.id is None else json.dumps(r.id, ensure_ascii=False) for r in chunk],
                "messages": [None if r.error else json.dumps(r.messages, ensure_ascii=False) for r in chunk],
                "error": [r.error for r in chunk],
            },
            schema=schema,
        )


def ray_rows(
    factory: GuardFactory,
    records: Iterable[Record],
    *,
    policy: Policy,
    batch_size: int,
    num_workers: int,
    ray_address: str | None = None,
    num_cpus_per_worker: float = 1.0,
    num_gpus_per_worker: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """Verdict rows for ``records`` from a Ray Data actor pool of ``num_workers`` guards, in input order."""
    import ray

    started_ray = _init_ray(ray_address, num_workers * num_cpus_per_worker)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # moderate() shows its own
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # One block per batch, so every actor gets work from the start.
        tables = list(_input_tables(records, rows_per_block=batch_size))
        if not tables:
            return
        dataset = ray.data.from_arrow(tables).map_batches(
            GuardPredictor,
            fn_constructor_kwargs={"guard_factory": factory, "policy": policy, "batch_size": batch_size},
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=num_workers),
            num_cpus=num_cpus_per_worker,
            num_gpus=num_gpus_per_worker or None,
        )
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                id_json = row.pop("id_json")
                row["id"] = None if id_json is None else json.loads(id_json)
                yield row
    finally:
        if started_ray:
            ray.shutdown()


__all__ = ["GuardPredictor", "ray_rows"]
