"""The limits and options of a served guard (one object, shared by the CLI, the app and Ray Serve)."""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Environment variable holding API keys (comma- or whitespace-separated), read in addition to ``--api-key``.
API_KEYS_ENV = "LLAMAGUARD_API_KEYS"


@dataclass(frozen=True)
class ServeSettings:
    """What a server accepts. Every limit is checked before any model work; a request past one gets a 4xx
    saying which limit and what to change.

    - ``api_keys``: bearer keys accepted (empty: no authentication).
    - ``max_body_bytes``: request body limit (413 beyond it).
    - ``max_inputs``: inputs of one ``/v1/moderations`` request, conversations of one batch request.
    - ``max_json_values``: values (strings, numbers, lists, objects) in one request body: each costs validation
      time on the event loop, so a body of millions of small values is refused before it is validated.
    - ``max_pending``: checks admitted at once, running or queued; a request that would exceed it gets 429
      with ``Retry-After``.
    - ``timeout_s``: deadline of each check (the server's; a request may ask for less, never more); past it 504.
    - ``max_custom_categories``: custom categories a per-request policy may add.
    - ``served_model_names``: the names ``model`` may take (besides leaving it out).
    """

    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 16 * 2**20
    max_inputs: int = 64
    max_json_values: int = 50_000
    max_pending: int = 512
    timeout_s: float = 30.0
    max_custom_categories: int = 8
    served_model_names: tuple[str, ...] = ("llama-guard-4",)
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_inputs", "max_json_values", "max_pending", "retry_after_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if any(not key for key in self.api_keys):
            raise ValueError("an API key must not be empty")


def api_keys_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The keys in :data:`API_KEYS_ENV` (comma- or whitespace-separated; empty entries skipped)."""
    text = (os.environ if environ is None else environ).get(API_KEYS_ENV, "")
    return tuple(key for key in text.replace(",", " ").split() if key)
