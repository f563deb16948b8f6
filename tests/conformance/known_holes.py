"""Cells that fail today because of a known hole: ``xfail(strict=True)``, with why.

Empty: every known hole is closed. A new hole found before its
fix lands goes here as ``(entry point, case): "why"``, so the run stays honest about it; when the fix
lands its cell XPASSes and fails the run until the entry goes.
"""

from __future__ import annotations

KNOWN: dict[tuple[str, str], str] = {}


def hole(entry: str, case: str) -> str | None:
    """The known hole of this cell (``None``: the cell must pass)."""
    return KNOWN.get((entry, case))
