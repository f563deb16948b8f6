"""Llama Guard 4 over HTTP: an OpenAI-compatible ``/v1/moderations`` service and a conversation endpoint.

- :mod:`.app`: the ASGI app (FastAPI) around one loaded :class:`~llamaguard_guardrails.LlamaGuard`
  (``create_app``); needs the ``serve`` extra.
- :mod:`.mapping`: Llama Guard 4 codes (S1-S14, custom) to the OpenAI moderation category keys.
- :mod:`.client`: :class:`~.client.RemoteGuard`, the guard of ``LlamaGuard.from_server(url)`` (httpx only).
- :mod:`.settings`: the limits a server enforces.

Nothing here is imported by the core: the server is an adapter like the others.
"""

from __future__ import annotations

from .settings import ServeSettings

__all__ = ["ServeSettings"]
