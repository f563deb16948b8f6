"""Dataset moderation: one verdict per input row, in input order, locally or on a Ray cluster.

>>> from llamaguard_guardrails.scale import moderate
>>> moderate("chats.jsonl", "verdicts.jsonl", model="meta-llama/Llama-Guard-4-12B")  # doctest: +SKIP
>>> moderate("chats.parquet", "verdicts.parquet", model=M, engine="ray", num_workers=4)  # doctest: +SKIP

``engine="local"`` runs one guard in this process (:mod:`.local_engine`). ``engine="ray"`` runs a
pool of Ray actors, one model each, batched calls (:mod:`.ray_engine`), on a local Ray instance
(started for the run with ``num_cpus=num_workers``) or on a cluster (``ray_address``). Both give
identical rows (file formats: :mod:`.records`). A row that cannot be read or is not a valid
conversation gets an ``invalid`` row in its place; nothing is dropped and the run goes on.

Building blocks (``evaluate`` and your own scripts reuse them): :func:`.records.read_records` gives
:class:`.records.Record` s lazily; :func:`verdict_batches` turns them into batches of verdict rows
with either engine; :class:`.records.RowWriter` writes them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from typing import Any, Literal

from ..core.policy import Policy
from ..logs import progress_bar
from .local_engine import GuardFactory, PretrainedFactory, local_batches
from .records import MAX_LINE_BYTES, Record, RowWriter, count_records, read_records

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


# -- engines: batches of verdict rows, in input order --------------------------------------------------


@dataclass(frozen=True)
class EngineOptions:
    """Which engine checks the rows, its batch size and the shape of the Ray actor pool (checked here)."""

    engine: Engine = "local"
    batch_size: int = 8
    num_workers: int = 2
    ray_address: str | None = None
    num_cpus_per_worker: float = 1.0
    num_gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', got {self.engine!r}")
        if self.num_workers < 1 or self.batch_size < 1:
            raise ValueError("num_workers and batch_size must be >= 1")
        if self.num_cpus_per_worker <= 0 or self.num_gpus_per_worker < 0:
            raise ValueError("num_cpus_per_worker must be > 0 and num_gpus_per_worker >= 0")

    def batches(
        self, records: Iterable[Record], factory: GuardFactory, policy: Policy
    ) -> Iterator[list[dict[str, Any]]]:
        """Batches of verdict rows for ``records`` from this engine (see :func:`verdict_batches`)."""
        if self.engine == "local":
            return local_batches(factory, records, policy=policy, batch_size=self.batch_size)
        from .ray_engine import ray_batches

        return ray_batches(
            factory,
            records,
            policy=policy,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            ray_address=self.ray_address,
            num_cpus_per_worker=self.num_cpus_per_worker,
            num_gpus_per_worker=self.num_gpus_per_worker,
        )


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
    options = EngineOptions(engine, batch_size, num_workers, ray_address, num_cpus_per_worker, num_gpus_per_worker)
    return options.batches(records, factory, policy or Policy())


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
    options = EngineOptions(engine, batch_size, num_workers, ray_address, num_cpus_per_worker, num_gpus_per_worker)
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be >= 1")
    records = read_records(input_path, max_line_bytes=max_line_bytes)  # checks the input before any model loads
    writer = RowWriter(output_path, input_path=input_path)
    factory = guard_factory or PretrainedFactory(model, guard_options)  # type: ignore[arg-type]
    batches = options.batches(records, factory, policy or Policy())
    started = time.perf_counter()
    counts = dict.fromkeys(("safe", "unsafe", "error", "invalid"), 0)
    try:
        with writer, closing(batches), ExitStack() as stack:
            bar = None
            for batch in batches:
                if bar is None:  # after the first batch: model loading is not counted in rows/s
                    bar = stack.enter_context(
                        progress_bar(
                            count_records(input_path) if progress else None,
                            unit="row",
                            desc=f"moderate ({engine})",
                            enabled=progress,
                        )
                    )
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


__all__ = ["EngineOptions", "ModerationSummary", "moderate", "verdict_batches"]
