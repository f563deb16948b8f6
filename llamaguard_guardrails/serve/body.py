"""Request bodies read one way only: JSON that readers may take differently is refused before any check (400).

A JSON object that repeats a key (``{"input": "<harmful>", "input": "bread"}``) is valid JSON whose meaning
depends on the reader: Python keeps the last value, other parsers the first. Whatever reads the same body
elsewhere (a gateway, a log, the application that forwards it) could act on a text the guard never saw. So a
repeated key, ``NaN`` / ``Infinity`` (not JSON, though Python reads them) and nesting past Python's recursion
limit are a 400 saying what to change, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ..core.errors import shown_name


class _Unreadable(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Unreadable(
                f"the key {shown_name(key)} appears twice in one object (readers differ on which value counts): "
                "send each key once"
            )
        seen.add(key)
    return dict(pairs)


def _constant(name: str) -> Any:
    raise _Unreadable(f"{name} is not a JSON value: send a number")


def loads(body: bytes | str) -> Any:
    """``json.loads`` that refuses repeated keys, ``NaN``/``Infinity`` and runaway nesting with a
    ``json.JSONDecodeError`` saying why (what FastAPI answers as an invalid body)."""
    try:
        return json.loads(body, object_pairs_hook=_unique, parse_constant=_constant)
    except _Unreadable as exc:
        raise json.JSONDecodeError(str(exc), "", 0) from None
    except RecursionError:
        raise json.JSONDecodeError("the JSON is nested too deeply", "", 0) from None


class _StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A FastAPI route whose JSON body is read by :func:`loads`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictRequest(request.scope, request.receive))

        return strict
