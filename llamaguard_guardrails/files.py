"""Files the package reads and writes: bounded reads, output paths that never clobber an input, strict JSON.

Every command and API that writes a file (``moderate``'s output, ``evaluate``'s report and plots,
``EvaluationReport.to_json``) takes its path through :func:`output_path`, which refuses a folder, a missing or
unwritable folder, and any path that is one of the run's inputs (the same file by ``samefile``, or the same
resolved path, symlinks and ``..`` included). Whole files are written with :func:`write_atomic` (a temporary
file in the same folder, renamed over the target once complete: a reader never sees half a file, and a failed
write leaves the old file). JSON is written with :func:`strict_json`: NaN and infinities become ``null``, so
every file parses with ``jq`` and strict JSON readers. Files read whole (a conversation, a policy) are read with
:func:`read_bounded`, which refuses one over its size limit before reading it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from .core.errors import GuardError

#: The largest file read whole (a conversation file, a policy file): 64 MiB.
MAX_FILE_BYTES = 64 * 1024 * 1024

PathLike = str | os.PathLike[str]


class DatasetError(GuardError, ValueError):
    """An input or output file cannot be used at all (missing, too large, unknown format, one of the inputs)."""


def read_bounded(path: PathLike, what: str, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path`` (``what`` names it in errors); over ``max_bytes`` (default :data:`MAX_FILE_BYTES`)
    is a :class:`DatasetError`."""
    path = Path(path)
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    if path.is_dir():
        raise DatasetError(f"{what} {path} is a folder, not a file")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)  # never more than the limit (a pipe or a growing file included)
    except FileNotFoundError as exc:
        raise DatasetError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise DatasetError(f"{what} {path} is larger than {max_bytes} bytes: give a smaller file")
    return data


def output_path(path: PathLike, inputs: Iterable[PathLike | None] = (), *, what: str = "output") -> Path:
    """``path`` checked as somewhere to write (before any work starts): :class:`DatasetError` if it is a folder,
    its folder is missing or not writable, or it is any of ``inputs`` (same file, or same resolved path)."""
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{what} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise DatasetError(f"{what} folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise DatasetError(f"{what} folder {path.parent} is not writable")
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise DatasetError(f"{what} {path} is the input file {source}: give another file name")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists() and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return a.resolve() == b.resolve()


def write_atomic(path: PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Run ``write(handle)`` on a temporary file next to ``path``, then rename it over ``path``.

    The target is replaced only by a complete file; on any error the temporary file is removed and the
    target is untouched.
    """
    path = Path(path)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (lists, tuples and dicts walked)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def strict_json(value: Any, **options: Any) -> str:
    """JSON that strict readers (``jq``, ``JSON.parse``) accept: NaN and infinities written as ``null``."""
    return json.dumps(finite(value), allow_nan=False, **options)


__all__ = [
    "MAX_FILE_BYTES",
    "DatasetError",
    "finite",
    "output_path",
    "read_bounded",
    "strict_json",
    "write_atomic",
]
