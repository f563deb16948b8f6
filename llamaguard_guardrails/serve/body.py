"""Request bodies read one way only: JSON that readers may take differently is refused before any check (400).

A JSON object that repeats a key (``{"input": "<harmful>", "input": "bread"}``) is valid JSON whose meaning
depends on the reader: Python keeps the last value, other parsers the first. Whatever reads the same body
elsewhere (a gateway, a log, the application that forwards it) could act on a text the guard never saw. So a
repeated key, ``NaN`` / ``Infinity`` (not JSON, though Python reads them), nesting past Python's recursion
limit, bytes that are not UTF-8, and more values than ``ServeSettings.max_json_values`` are a 400 saying what to
change, never a guess.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ..core.json_text import loads_unambiguous


class _StrictRequest(Request):
    async def json(self) -> Any:
        """The body read off the event loop (a large one takes a while), bounded in values: each value costs the
        request validation on the loop, and a bad one an error, so millions of them would stall every request."""
        if not hasattr(self, "_json"):
            limit = self.app.state.serve.settings.max_json_values
            self._json = await asyncio.to_thread(loads_unambiguous, await self.body(), max_values=limit)
        return self._json


class StrictJSONRoute(APIRoute):
    """A FastAPI route whose JSON body is read by ``core.json_text.loads_unambiguous`` (a ``json.JSONDecodeError``
    there is FastAPI's invalid-body 400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictRequest(request.scope, request.receive))

        return strict
