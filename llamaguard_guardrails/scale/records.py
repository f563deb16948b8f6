"""Dataset rows in and verdict rows out: JSONL and Parquet readers and writers.

Input: each JSONL line (or Parquet row) is a conversation: a JSON list of OpenAI-format messages, an
object ``{"messages": [...], "id": ...}``, or a JSON string (one user message). Parquet needs a
``messages`` column holding JSON text or lists of message structs, and may have an ``id`` column.
A line that cannot be read becomes a :class:`Record` with ``error`` set, in its place.

Output: one row per input row, in input order, with the fields of :data:`OUTPUT_FIELDS`:
``line`` (1-based line or row number), ``id`` (the input's, or null), ``status`` (``safe``,
``unsafe``, ``error`` - the guard failed and the fail mode decided - or ``invalid`` - the row could
not be read or is not a valid conversation), ``safe`` (null for invalid rows: never true),
``categories``, ``unsafe_probability`` (null for invalid rows) and ``error``. JSONL output keeps
``id`` as it was; Parquet output stores it as text (JSON for non-string ids).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import GuardError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
OUTPUT_FIELDS = ("line", "id", "status", "safe", "categories", "unsafe_probability", "error")


class DatasetError(GuardError, ValueError):
    """The input or output file cannot be used at all (missing, unknown format, no ``messages`` column)."""


@dataclass(frozen=True)
class Record:
    """One input row: its number, its id, its conversation - or why it could not be read."""

    line: int
    id: Any = None
    messages: Any = None
    error: str | None = None


def file_format(path: str | os.PathLike[str]) -> str:
    """``"jsonl"`` or ``"parquet"`` from the file name."""
    name = str(path).lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise DatasetError(f"{path}: unknown format; use a .jsonl or .parquet file name")


# -- reading ----------------------------------------------------------------------------------------


def record_from_value(line: int, value: Any) -> Record:
    """A :class:`Record` from one decoded JSON value (a list, an object with ``messages``, a string)."""
    if isinstance(value, list | str):
        return Record(line, None, value)
    if isinstance(value, Mapping):
        if "messages" not in value:
            return Record(line, value.get("id"), None, "the object has no 'messages' key")
        return Record(line, value.get("id"), value["messages"])
    return Record(
        line, None, None, f"expected a JSON list of messages or an object with 'messages', got {type(value).__name__}"
    )


def parse_jsonl_line(line: int, raw: bytes | str) -> Record:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        return Record(line, error=f"not UTF-8 text: {exc}")
    if not text.strip():
        return Record(line, error="empty line")
    try:
        return record_from_value(line, json.loads(text))
    except json.JSONDecodeError as exc:
        return Record(line, error=f"not valid JSON: {exc}")


def read_records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Every row of a JSONL or Parquet file as a :class:`Record`, in order; unreadable rows included."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"input file {path} does not exist")
    if file_format(path) == "jsonl":
        return _read_jsonl(path)
    return _read_parquet(_parquet_file(path))  # opened now: a bad file is refused before any model loads


def _read_jsonl(path: Path) -> Iterator[Record]:
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, 1):
            yield parse_jsonl_line(line, raw.rstrip(b"\r\n"))


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise DatasetError(f"{path} is not a readable Parquet file: {exc}") from exc
    if "messages" not in parquet.schema_arrow.names:
        raise DatasetError(f"{path} has no 'messages' column (columns: {parquet.schema_arrow.names})")
    return parquet


def _read_parquet(parquet: Any) -> Iterator[Record]:
    columns = ["messages"] + (["id"] if "id" in parquet.schema_arrow.names else [])
    line = 0
    for batch in parquet.iter_batches(batch_size=1024, columns=columns):
        data = batch.to_pydict()
        ids = data.get("id", [None] * batch.num_rows)
        for value, id_ in zip(data["messages"], ids):
            line += 1
            yield _parquet_record(line, value, id_)


def _parquet_record(line: int, value: Any, id_: Any) -> Record:
    if value is None:
        return Record(line, id_, None, "the messages cell is null")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            return Record(line, id_, None, f"the messages cell is not valid JSON: {exc}")
        if isinstance(value, Mapping) and "messages" in value:
            value = value["messages"]
        return Record(line, id_, value) if isinstance(value, list | str) else record_from_value(line, value)
    return Record(line, id_, _drop_nulls(value))


def _drop_nulls(value: Any) -> Any:
    """Struct columns give every message every field (absent ones as None): drop those again."""
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def count_records(path: str | os.PathLike[str]) -> int | None:
    """Number of rows (for the progress bar), cheaply; None when unknown."""
    path = Path(path)
    try:
        if file_format(path) == "parquet":
            return _parquet_file(path).metadata.num_rows
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except (OSError, DatasetError):
        return None


# -- writing ----------------------------------------------------------------------------------------


class RowWriter:
    """Writes verdict rows to ``path`` (JSONL or Parquet by extension) via a temporary file, renamed on close."""

    def __init__(self, path: str | os.PathLike[str], *, parquet_rows_per_group: int = 10_000) -> None:
        self.path = Path(path)
        self.format = file_format(self.path)
        if not self.path.parent.is_dir():
            raise DatasetError(f"output folder {self.path.parent} does not exist")
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self._rows_per_group = parquet_rows_per_group
        self._pending: list[dict[str, Any]] = []
        self._handle: Any = None
        self._parquet: Any = None
        self.count = 0
        if self.format == "jsonl":
            self._handle = self._tmp.open("w", encoding="utf-8")

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.count += 1
            if self._handle is not None:
                self._handle.write(json.dumps({k: row.get(k) for k in OUTPUT_FIELDS}, ensure_ascii=False) + "\n")
            else:
                self._pending.append(dict(row))
        if len(self._pending) >= self._rows_per_group:
            self._flush_parquet()

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._tmp, parquet_schema())
        columns: dict[str, list[Any]] = {name: [] for name in OUTPUT_FIELDS}
        for row in self._pending:
            for name in OUTPUT_FIELDS:
                columns[name].append(row.get(name))
        columns["id"] = [id_text(v) for v in columns["id"]]
        self._parquet.write_table(pa.table(columns, schema=parquet_schema()))
        self._pending = []

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._handle is not None:
            self._handle.close()
        else:
            if self._pending or self._parquet is None:
                self._flush_parquet()
            self._parquet.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        """Drop the partial file (after a failure)."""
        try:
            if self._handle is not None:
                self._handle.close()
            elif self._parquet is not None:
                self._parquet.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def parquet_schema() -> Any:
    """The output schema (built lazily, so pyarrow is imported only for Parquet)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("line", pa.int64()),
            ("id", pa.string()),
            ("status", pa.string()),
            ("safe", pa.bool_()),
            ("categories", pa.list_(pa.string())),
            ("unsafe_probability", pa.float64()),
            ("error", pa.string()),
        ]
    )


def id_text(value: Any) -> str | None:
    """An id as text for Parquet: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a moderation output file back (JSONL or Parquet) as a list of rows."""
    path = Path(path)
    if file_format(path) == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
