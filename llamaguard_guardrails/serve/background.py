"""A served app on 127.0.0.1 in a background thread (tests, benchmarks, notebooks): uvicorn, a free port."""

from __future__ import annotations

import threading
import time
from typing import Any


class BackgroundServer:
    """Run an ASGI app with uvicorn in a daemon thread; ``url`` once :meth:`start` returns (the app is then
    accepting connections; ``wait_ready`` waits for ``/ready``). :meth:`stop` shuts it down gracefully."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, graceful_s: float = 10.0) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=graceful_s, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.host = host
        self._thread = threading.Thread(target=self.server.run, name="llamaguard-serve", daemon=True)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (see the log above)")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def wait_ready(self, timeout_s: float = 120.0) -> BackgroundServer:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            response = httpx.get(f"{self.url}/ready", timeout=5)
            if response.status_code == 200:
                return self
            if response.json().get("status") == "failed":
                raise RuntimeError(f"the guard failed to load: {response.json().get('error')}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.url} was not ready within {timeout_s} s")

    def stop(self, timeout_s: float = 30.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> BackgroundServer:
        return self.start().wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()
