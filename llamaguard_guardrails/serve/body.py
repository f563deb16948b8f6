"""Request bodies read one way only: JSON that readers may take differently is refused before any check (400).

A JSON object that repeats a key (``{"input": "<harmful>", "input": "bread"}``) is valid JSON whose meaning
depends on the reader: Python keeps the last value, other parsers the first. Whatever reads the same body
elsewhere (a gateway, a log, the application that forwards it) could act on a text the guard never saw. So a
repeated key, ``NaN`` / ``Infinity`` (not JSON, though Python reads them) and nesting past Python's recursion
limit are a 400 saying what to change, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ..core.json_text import loads_unambiguous


class _StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_unambiguous(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A FastAPI route whose JSON body is read by ``core.json_text.loads_unambiguous`` (a ``json.JSONDecodeError``
    there is FastAPI's invalid-body 400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictRequest(request.scope, request.receive))

        return strict
