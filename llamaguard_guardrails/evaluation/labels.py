"""Labelled rows: the conversation file's ``unsafe`` and ``categories`` labels, checked row by row.

Each JSONL line (or Parquet row) is a conversation in the shapes ``moderate`` reads, plus labels: an
object ``{"messages": [...], "id": ..., "unsafe": true, "categories": ["S9"]}``. ``unsafe`` (a JSON
boolean) is required; ``categories`` (a list of codes) is optional and only allowed on unsafe rows.
Parquet needs ``messages`` and ``unsafe`` columns and may have ``id`` and ``categories`` (a list of
strings, or JSON text). A row whose labels cannot be used keeps its place with ``problem`` set: it is
listed in the report, never dropped and never counted as safe or unsafe.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.categories import CATEGORY_CODE
from ..core.json_text import loads_unambiguous
from ..scale.records import MAX_LINE_BYTES, DatasetError, describe_error, file_format, jsonl_lines, parquet_batch_rows


@dataclass(frozen=True)
class LabelledRow:
    """One row's labels: ``unsafe``, ``categories`` (None: not labelled) - or the ``problem`` with them."""

    line: int
    id: Any = None
    unsafe: bool | None = None
    categories: tuple[str, ...] | None = None
    problem: str | None = None


def read_labels(path: str | os.PathLike[str], known_codes: Collection[str]) -> list[LabelledRow]:
    """Every row's labels, in file order (1-based ``line``, numbered as ``moderate`` numbers them)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"labelled file {path} does not exist")
    if file_format(path) == "jsonl":
        return list(_jsonl_labels(path, known_codes))
    return list(_parquet_labels(path, known_codes))


def _jsonl_labels(path: Path, known: Collection[str]) -> Iterator[LabelledRow]:
    with path.open("rb") as handle:
        for line, raw, too_long in jsonl_lines(handle):  # bounded pieces: a huge line is skipped, not held
            yield LabelledRow(line, problem=too_long) if too_long else _jsonl_row(line, raw, known)


def _jsonl_row(line: int, raw: bytes, known: Collection[str]) -> LabelledRow:
    try:
        value = loads_unambiguous(raw.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - bad UTF-8 or JSON, a number past Python's digit limit, nesting: this row
        return LabelledRow(line, problem=f"not a JSON line: {describe_error(exc)}" if raw.strip() else "empty line")
    if not isinstance(value, Mapping):
        return LabelledRow(line, problem="no labels: a labelled row is an object with 'messages' and 'unsafe'")
    return check_labels(line, value.get("id"), value, known)


def check_labels(line: int, id_: Any, labels: Mapping[str, Any], known: Collection[str]) -> LabelledRow:
    """A :class:`LabelledRow` from the row's ``unsafe`` and ``categories`` values, or the problem with them."""
    unsafe = labels.get("unsafe")
    if unsafe is None:
        return LabelledRow(line, id_, problem="no 'unsafe' label (true or false)")
    if not isinstance(unsafe, bool):
        return LabelledRow(line, id_, problem=f"the 'unsafe' label must be true or false, got {_short(unsafe)}")
    categories = labels.get("categories")
    if categories is None:
        return LabelledRow(line, id_, unsafe)
    if isinstance(categories, str) or not isinstance(categories, list | tuple):
        return LabelledRow(
            line, id_, problem=f"'categories' must be a list of codes such as ['S9'], got {_short(categories)}"
        )
    if not all(isinstance(c, str) for c in categories):
        return LabelledRow(line, id_, problem=f"'categories' must hold codes as text, got {_short(list(categories))}")
    codes = tuple(dict.fromkeys(c.strip() for c in categories))
    unknown = [c for c in codes if not CATEGORY_CODE.match(c) or c not in known]
    if unknown:
        return LabelledRow(line, id_, problem=f"unknown category code(s) {unknown}; known: {_known_text(known)}")
    if codes and not unsafe:
        return LabelledRow(line, id_, problem=f"a row labelled safe has categories {list(codes)}")
    return LabelledRow(line, id_, unsafe, codes or None)


def _short(value: Any, most: int = 80) -> str:
    """``repr(value)``, cut to ``most`` characters: a problem names the value, it does not copy a hostile one."""
    text = reprlib.repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."


def _known_text(known: Collection[str]) -> str:
    return ", ".join(sorted(known, key=code_order))


def code_order(code: str) -> tuple[int, str]:
    """Sort key for category codes: S1, S2 ... S10 ... S14, S15, then anything else by name."""
    return (int(code[1:]), code) if CATEGORY_CODE.match(code) else (10**6, code)


def _parquet_labels(path: Path, known: Collection[str]) -> Iterator[LabelledRow]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise DatasetError(f"{path} is not a readable Parquet file: {exc}") from exc
    names = parquet.schema_arrow.names
    if "unsafe" not in names:
        raise DatasetError(f"{path} has no 'unsafe' label column (columns: {names})")
    columns = [c for c in ("id", "unsafe", "categories") if c in names]
    line = 0
    for group in range(parquet.num_row_groups):
        rows = parquet_batch_rows(parquet.metadata.row_group(group), columns, MAX_LINE_BYTES)
        for batch in parquet.iter_batches(batch_size=rows, row_groups=[group], columns=columns):
            data = batch.to_pydict()
            for i in range(batch.num_rows):
                line += 1
                labels = {name: data[name][i] for name in columns}
                if isinstance(labels.get("categories"), str):
                    labels["categories"] = _json_or_text(labels["categories"])
                yield check_labels(line, labels.get("id"), labels, known)


def _json_or_text(value: str) -> Any:
    try:
        return loads_unambiguous(value)
    except Exception:  # noqa: BLE001 - not JSON (or a number past the digit limit): reported as not a list
        return value
