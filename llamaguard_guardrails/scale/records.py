"""Dataset rows in and verdict rows out: JSONL and Parquet readers and writers.

Input: each JSONL line (or Parquet row) is a conversation: a JSON list of OpenAI-format messages, an
object ``{"messages": [...], "id": ...}``, or a JSON string (one user message). Parquet needs a
``messages`` column holding JSON text or lists of message structs, and may have an ``id`` column.
A line that cannot be read becomes a :class:`Record` with ``error`` set, in its place: a blank line,
bytes that are not UTF-8, text that is not JSON, JSON nested too deeply to decode, a line longer
than ``max_line_bytes`` (read in bounded pieces and skipped, never held whole).

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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.errors import GuardError
from ..core.json_text import loads_unambiguous
from ..core.values import text_size
from ..files import DatasetError, output_path, strict_json

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
OUTPUT_FIELDS = ("line", "id", "status", "safe", "categories", "unsafe_probability", "error")


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

MAX_LINE_BYTES = 64 * 1024 * 1024
"""The longest JSONL line read (64 MiB); a longer line becomes an ``invalid`` row."""

_SIMPLE_IDS = (str, int, float, bool, type(None))


def describe_error(exc: BaseException) -> str:
    """One line saying why a row could not be read or checked."""
    if isinstance(exc, RecursionError):
        return f"nested too deeply to read (RecursionError: {exc})"
    if isinstance(exc, MemoryError):
        return "too large to read (MemoryError)"
    if isinstance(exc, GuardError):
        return " ".join(str(exc).split())
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def record_from_value(line: int, value: Any, id_: Any = None) -> Record:
    """A :class:`Record` from one decoded JSON value (a list, an object with ``messages``, a string).

    ``id_`` (e.g. a Parquet ``id`` column) wins over the object's own ``id``. Never raises: anything
    that cannot be read gives a Record with ``error`` set.
    """
    try:
        record = _record_from_value(line, value)
        if id_ is not None:
            record = replace(record, id=id_)
        _check_id(record.id)
        return record
    except Exception as exc:  # noqa: BLE001 - a hostile row becomes an invalid row, never a crash
        return Record(line, id_ if _writable_id(id_) else None, None, describe_error(exc))


def _record_from_value(line: int, value: Any) -> Record:
    if isinstance(value, list | str):
        return Record(line, None, value)
    if isinstance(value, Mapping):
        if "messages" not in value:
            return Record(line, value.get("id"), None, "the object has no 'messages' key")
        return Record(line, value.get("id"), value["messages"])
    return Record(
        line, None, None, f"expected a JSON list of messages or an object with 'messages', got {type(value).__name__}"
    )


def _check_id(value: Any) -> None:
    """Ids are written back as JSON: refuse one that cannot be (e.g. nested too deeply)."""
    if not isinstance(value, _SIMPLE_IDS):
        json.dumps(value, ensure_ascii=False)


def _writable_id(value: Any) -> bool:
    try:
        _check_id(value)
    except Exception:  # noqa: BLE001
        return False
    return True


def parse_jsonl_line(line: int, raw: bytes | str) -> Record:
    """One JSONL line as a :class:`Record`; never raises (a bad line gives a Record with ``error``)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        return Record(line, error=f"not UTF-8 text: {exc}")
    if not text.strip():
        return Record(line, error="empty line")
    try:
        value = loads_unambiguous(text)
    except json.JSONDecodeError as exc:
        return Record(line, error=f"not valid JSON: {exc}")
    except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError: the row is invalid, the run goes on
        return Record(line, error=describe_error(exc))
    return record_from_value(line, value)


def read_records(path: str | os.PathLike[str], *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Record]:
    """Every row of a JSONL or Parquet file as a :class:`Record`, in order; unreadable rows included.

    The file is opened now (a missing or unreadable file raises :class:`DatasetError` before any
    model loads) and read lazily, in bounded pieces: JSONL line by line (lines longer than
    ``max_line_bytes`` become invalid rows), Parquet 1024 rows at a time.
    """
    path = Path(path)
    _check_input(path)
    if file_format(path) == "jsonl":
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return _read_jsonl(handle, max_line_bytes)
    return _read_parquet(_parquet_file(path), max_line_bytes)


def _check_input(path: Path) -> None:
    if path.is_dir():
        raise DatasetError(f"input {path} is a folder; give a .jsonl or .parquet file")
    if not path.is_file():
        raise DatasetError(f"input file {path} does not exist")


def _read_jsonl(handle: Any, max_line_bytes: int) -> Iterator[Record]:
    with handle:
        for line, raw, too_long in jsonl_lines(handle, max_line_bytes):
            yield Record(line, error=too_long) if too_long else parse_jsonl_line(line, raw)


def jsonl_lines(handle: Any, max_line_bytes: int | None = None) -> Iterator[tuple[int, bytes, str | None]]:
    """``(line number, bytes without the line end, None)`` for each line of a binary file, read in bounded
    pieces; a line longer than ``max_line_bytes`` (default :data:`MAX_LINE_BYTES`) is skipped unread and gives
    ``(n, b"", why)`` instead."""
    max_line_bytes = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    line = 0
    while raw := handle.readline(max_line_bytes + 1):
        line += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            size = len(raw) + _skip_rest_of_line(handle)
            yield line, b"", f"the line is {size} bytes long, over the {max_line_bytes}-byte limit"
            continue
        yield line, raw.rstrip(b"\r\n"), None


def _skip_rest_of_line(handle: Any, piece: int = 1 << 20) -> int:
    """Read past the end of the current line, a bounded piece at a time; the number of bytes skipped."""
    skipped = 0
    while chunk := handle.readline(piece):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise DatasetError(f"{path} is not a readable Parquet file: {exc}") from exc
    if "messages" not in parquet.schema_arrow.names:
        raise DatasetError(f"{path} has no 'messages' column (columns: {parquet.schema_arrow.names})")
    return parquet


def _read_parquet(parquet: Any, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Record]:
    columns = ["messages"] + (["id"] if "id" in parquet.schema_arrow.names else [])
    line = 0
    for group in range(parquet.num_row_groups):
        rows = parquet_batch_rows(parquet.metadata.row_group(group), columns, max_line_bytes)
        for batch in parquet.iter_batches(batch_size=rows, row_groups=[group], columns=columns):
            data = batch.to_pydict()
            ids = data.get("id", [None] * batch.num_rows)
            for value, id_ in zip(data["messages"], ids):
                line += 1
                yield parquet_record(line, value, id_, max_bytes=max_line_bytes)


def parquet_batch_rows(group: Any, columns: list[str], max_line_bytes: int, most: int = 1024) -> int:
    """Rows to decode at a time from one row group, so that a batch decodes to ``max_line_bytes`` at most (or to
    one row, when the group is larger).

    Compressed and dictionary-encoded Parquet decodes to far more than its file size (a 3 KB file held a 70 MB
    cell; one dictionary value can fill every row), and the data a row decodes to is known only once decoded. Any
    one cell decodes to at most the group's declared (uncompressed, still encoded) size of its columns, since every
    value is stored there, so ``max_line_bytes // declared`` rows decode to ``max_line_bytes`` at most.
    """
    declared = sum(
        group.column(i).total_uncompressed_size
        for i in range(group.num_columns)
        if group.column(i).path_in_schema.split(".")[0] in columns
    )
    return max(1, min(most, max_line_bytes // max(declared, 1)))


def parquet_record(line: int, value: Any, id_: Any = None, *, max_bytes: int | None = None) -> Record:
    """A :class:`Record` from a Parquet ``messages`` cell (JSON text, or message structs) and its ``id``.

    The ``id`` column is kept whatever the cell holds; a cell over ``max_bytes`` (default :data:`MAX_LINE_BYTES`)
    is an invalid row, as a JSONL line is: JSON text by its UTF-8 size, message structs by the UTF-8 size of
    their strings. Never raises.
    """
    limit = MAX_LINE_BYTES if max_bytes is None else max_bytes
    if value is None:
        return Record(line, id_, None, "the messages cell is null")
    if isinstance(value, str):
        if not value.strip():
            return Record(line, id_, None, "the messages cell is empty")
        if len(value) > limit // 4 and (size := len(value.encode("utf-8", "surrogatepass"))) > limit:
            return Record(line, id_, None, f"the messages cell is {size} bytes long, over the {limit}-byte limit")
        try:
            value = loads_unambiguous(value)
        except json.JSONDecodeError as exc:
            return Record(line, id_, None, f"the messages cell is not valid JSON: {exc}")
        except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError: an invalid row
            return Record(line, id_, None, describe_error(exc))
        return record_from_value(line, value, id_)
    try:
        if text_size(value, limit, utf8=True) > limit:
            return Record(line, id_, None, f"the messages cell holds more than {limit} bytes of text (the row limit)")
        value = _drop_nulls(value)
    except Exception as exc:  # noqa: BLE001 - a hostile cell becomes an invalid row
        return Record(line, id_, None, describe_error(exc))
    return record_from_value(line, value, id_)


def _drop_nulls(value: Any) -> Any:
    """Struct columns give every message every field (absent ones as None): drop those again."""
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def count_records(path: str | os.PathLike[str]) -> int | None:
    """Number of rows (for the progress bar), read in bounded pieces; None when unknown."""
    path = Path(path)
    try:
        if file_format(path) == "parquet":
            return _parquet_file(path).metadata.num_rows
        return _count_lines(path)
    except (OSError, DatasetError):
        return None


def _count_lines(path: Path, piece: int = 1 << 20) -> int:
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(piece):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


# -- writing ----------------------------------------------------------------------------------------


class RowWriter:
    """Writes verdict rows to ``path`` (JSONL or Parquet by extension), batch by batch.

    The file is created at the first :meth:`write` (a run that fails before its first row leaves no
    file). JSONL is flushed after every :meth:`write`, so it holds every batch written even after a
    hard kill; Parquet is written in row groups and finished by :meth:`close`, which also runs when
    the ``with`` block ends with an exception (Ctrl-C, a crash): the rows written so far are kept.
    ``input_path``: refused as the output (writing would destroy the input while it is read).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        input_path: str | os.PathLike[str] | None = None,
        parquet_rows_per_group: int = 10_000,
    ) -> None:
        self.path = Path(path)
        check_output(self.path, input_path)
        self.format = file_format(self.path)
        self._rows_per_group = parquet_rows_per_group
        self._pending: list[dict[str, Any]] = []
        self._handle: Any = None
        self._parquet: Any = None
        self.count = 0

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append ``rows`` (JSONL: on disk when this returns)."""
        if self.format == "jsonl":
            lines = [strict_json({k: row.get(k) for k in OUTPUT_FIELDS}, ensure_ascii=False) + "\n" for row in rows]
            handle = self._jsonl_handle()
            handle.writelines(lines)
            handle.flush()
            self.count += len(lines)
            return
        for row in rows:
            self._pending.append(dict(row))
            self.count += 1
        if len(self._pending) >= self._rows_per_group:
            self._flush_parquet()

    def _jsonl_handle(self) -> Any:
        if self._handle is None:
            self._handle = self.path.open("w", encoding="utf-8")
        return self._handle

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, parquet_schema())
        columns: dict[str, list[Any]] = {name: [] for name in OUTPUT_FIELDS}
        for row in self._pending:
            for name in OUTPUT_FIELDS:
                columns[name].append(row.get(name))
        columns["id"] = [id_text(v) for v in columns["id"]]
        self._parquet.write_table(pa.table(columns, schema=parquet_schema()))
        self._pending = []

    def close(self) -> None:
        """Finish the file (an empty one when no row was written)."""
        if self.format == "jsonl":
            self._jsonl_handle().close()
            return
        if self._pending or self._parquet is None:
            self._flush_parquet()
        self._parquet.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None or self.count:
            self.close()  # after a failure too: the rows written so far stay readable
        elif self._handle is not None:
            self._handle.close()


def check_output(path: str | os.PathLike[str], input_path: str | os.PathLike[str] | None = None) -> None:
    """Refuse an output path that cannot be written, or is the input (before any model loads): :class:`DatasetError`."""
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"output {path} is a folder; give a .jsonl or .parquet file name")
    file_format(path)
    output_path(path, [input_path])


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
        with path.open("rb") as handle:
            rows = []
            for line, raw, too_long in jsonl_lines(handle):
                if too_long:
                    raise DatasetError(f"{path} line {line}: {too_long}")
                if raw.strip():
                    rows.append(json.loads(raw))
            return rows
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
