"""The two servers of the suite, both on 127.0.0.1, one of each per session:

- :class:`FakeUpstream`: an OpenAI-compatible LLM server (``/v1/chat/completions``, ``/v1/responses``,
  ``/v1/completions``) that answers exactly what a test scripted (a message or one per choice, chunk deltas,
  output items or stream events, completion texts), for ``guard_client``;
- :class:`ConformanceStack`: ``llama stack run`` with the library's safety provider around the scripted
  guard (:mod:`.conformance_guard`), for ``run_shield`` and moderations.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from stack_server import StackServer

from .conformance_guard.backend import EVENTS

HERE = Path(__file__).parent

# -- fake upstream LLM ------------------------------------------------------------------------------


class Reply:
    """What the upstream answers next: a chat ``message`` (or ``choices``, one message per choice) / chat ``deltas``
    / responses ``output`` / responses ``events`` (the stream's event dicts, sent as they are) / completion
    ``texts`` (one per choice, streamed in ``piece``-character chunks)."""

    def __init__(
        self,
        *,
        message: dict[str, Any] | None = None,
        choices: list[dict[str, Any]] | None = None,
        deltas: list[dict[str, Any]] | None = None,
        output: list[dict[str, Any]] | None = None,
        events: list[dict[str, Any]] | None = None,
        texts: list[str] | None = None,
        piece: int = 8,
    ) -> None:
        self.message, self.deltas, self.output, self.events = message, deltas, output, events
        self.choices, self.texts, self.piece = choices, texts, piece


class _Handler(BaseHTTPRequestHandler):
    server: FakeUpstream

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, obj: Any, code: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _sse(self, items: list[dict[str, Any]], done: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for item in items:
            self.wfile.write(f"data: {json.dumps(item)}\n\n".encode())
            self.wfile.flush()
        if done:
            self.wfile.write(b"data: [DONE]\n\n")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        EVENTS.add("upstream-called", json.dumps(body))
        self.server.requests.append(body)
        reply = self.server.reply or Reply(message={"role": "assistant", "content": "Fine."})
        if self.path.endswith("/chat/completions"):
            return self._chat(body, reply)
        if self.path.endswith("/responses"):
            return self._responses(body, reply)
        if self.path.endswith("/completions"):
            return self._completions(body, reply)
        return self._json({"error": {"message": f"unsupported {self.path}"}}, 404)

    def _chat(self, body: dict[str, Any], reply: Reply) -> None:
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "created": int(time.time()), "model": body.get("model", "m")}
        messages = reply.choices or [reply.message or {"role": "assistant", "content": "".join(d.get("content") or "" for d in reply.deltas or [])}]
        if not body.get("stream"):
            choices = [
                {"index": n, "message": m, "finish_reason": "tool_calls" if m.get("tool_calls") else "stop"}
                for n, m in enumerate(messages)
            ]
            return self._json({**head, "object": "chat.completion", "choices": choices})
        per_choice = [reply.deltas] if reply.deltas is not None else [[_delta_of(m)] for m in messages]
        chunks = [
            {**head, "object": "chat.completion.chunk", "choices": [{"index": n, "delta": d, "finish_reason": None}]}
            for n, deltas in enumerate(per_choice)
            for d in [{"role": "assistant", "content": ""}, *deltas]
        ]
        chunks += [
            {**head, "object": "chat.completion.chunk", "choices": [{"index": n, "delta": {}, "finish_reason": "stop"}]}
            for n in range(len(per_choice))
        ]
        self._sse(chunks, done=True)

    def _completions(self, body: dict[str, Any], reply: Reply) -> None:
        head = {"id": f"cmpl-{uuid.uuid4().hex[:8]}", "created": int(time.time()), "model": body.get("model", "m"), "object": "text_completion"}
        texts = reply.texts or ["Fine."]
        if not body.get("stream"):
            return self._json({**head, "choices": [{"index": n, "text": t, "finish_reason": "stop"} for n, t in enumerate(texts)]})
        chunks = [
            {**head, "choices": [{"index": n, "text": t[i : i + reply.piece], "finish_reason": None}]}
            for n, t in enumerate(texts)
            for i in range(0, len(t), reply.piece)
        ]
        self._sse(chunks, done=True)

    def _responses(self, body: dict[str, Any], reply: Reply) -> None:
        response = {
            "id": f"resp-{uuid.uuid4().hex[:8]}",
            "object": "response",
            "created_at": int(time.time()),
            "model": body.get("model", "m"),
            "status": "completed",
            "output": reply.output or [],
        }
        if not body.get("stream"):
            return self._json(response)
        events = reply.events if reply.events is not None else _events_of(response)
        self._sse(events, done=False)


def _delta_of(message: dict[str, Any]) -> dict[str, Any]:
    delta = {k: v for k, v in message.items() if k != "role"}
    if "tool_calls" in delta:
        delta["tool_calls"] = [{"index": n, **call} for n, call in enumerate(delta["tool_calls"])]
    return delta


def _events_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    """A plain Responses stream for ``response``: created, each item done, completed."""
    start = {**response, "status": "in_progress", "output": []}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": start, "sequence_number": 0}]
    for n, item in enumerate(response["output"]):
        events.append({"type": "response.output_item.done", "output_index": n, "item": item, "sequence_number": n + 1})
    events.append({"type": "response.completed", "response": response, "sequence_number": len(events)})
    return events


class FakeUpstream(ThreadingHTTPServer):
    """``FakeUpstream().url``: an OpenAI-compatible server answering the scripted :attr:`reply`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply: Reply | None = None
        self.requests: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, reply: Reply) -> None:
        self.reply = reply
        self.requests.clear()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


# -- llama stack run ----------------------------------------------------------------------------------

#: Shields of the suite's server: provider_shield_id = shield_id, so moderations can name them.
SHIELDS = {
    "conf": {},
    "conf-timeout": {"timeout_s": 0.5},
    "conf-open": {"fail_mode": "open"},
    "conf-threshold": {"threshold": 0.3},
}


def stack_config(home: Path, model_dir: Path) -> Path:
    """Safety only: the conformance provider, the suite's shields, sqlite stores under ``home``."""
    kv, sql = {"backend": "kv_default"}, {"backend": "sql_default"}
    config = {
        "version": 2,
        "distro_name": "llamaguard-guardrails-conformance",
        "apis": ["safety"],
        "providers": {
            "safety": [
                {
                    "provider_id": "conformance",
                    "provider_type": "inline::conformance-guard",
                    "module": "conformance_guard",
                    "config": {"model": str(model_dir)},
                }
            ]
        },
        "storage": {
            "backends": {
                "kv_default": {"type": "kv_sqlite", "db_path": str(home / "kv.db")},
                "sql_default": {"type": "sql_sqlite", "db_path": str(home / "sql.db")},
            },
            "stores": {
                "metadata": {"namespace": "registry", **kv},
                "inference": {"table_name": "inference_store", **sql},
                "conversations": {"table_name": "openai_conversations", **sql},
                "prompts": {"namespace": "prompts", **kv},
                "connectors": {"namespace": "connectors", **kv},
            },
        },
        "registered_resources": {
            "shields": [
                {"shield_id": name, "provider_id": "conformance", "provider_shield_id": name, "params": params}
                for name, params in SHIELDS.items()
            ]
        },
        "server": {"host": "127.0.0.1"},
    }
    path = home / "run.yaml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


class ConformanceStack(StackServer):
    """``llama stack run`` with the conformance provider; stopped by PID with SIGTERM."""

    def __init__(self, home: Path, model_dir: Path) -> None:
        env = {
            **os.environ,
            "LLAMA_STACK_CONFIG_DIR": str(home / "llama-home"),
            "LLAMA_STACK_LOG_FORMAT": "json",  # rich tracebacks stall the event loop ~5 s per error
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p),
        }
        super().__init__(stack_config(home, model_dir), env, home / "server.log")
