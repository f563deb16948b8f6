"""A real OGX 1.5.0 server on 127.0.0.1 (its own cached venv: scripts/ogx_venv.sh), and a tiny OpenAI-compatible
chat stub for its inference provider (no LLM): the stub streams the answer the test scripted for each question."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
STUB_MODEL = "stub-llm"


def ogx_venv() -> Path:
    """The OGX venv's folder (built on first use; cached)."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "ogx_venv.sh")], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/ogx_venv.sh failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def chat_stub(answers: dict[str, str], calls: list[str], chunk: int = 10) -> Any:
    """An ASGI app answering ``/v1/chat/completions`` (streamed in ``chunk``-character pieces) with
    ``answers[last user text]``; each question asked is appended to ``calls``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": STUB_MODEL, "object": "model", "owned_by": "stub"}]})

    async def chat(request: Request) -> Any:
        body = await request.json()
        last = next(m for m in reversed(body["messages"]) if m["role"] == "user")
        content = last["content"]
        question = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
        calls.append(question)
        answer = answers.get(question, "I have no scripted answer.")

        def chunk_json(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            data = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": STUB_MODEL,
                "choices": [choice],
            }
            return f"data: {json.dumps(data)}\n\n"

        async def stream():
            yield chunk_json({"role": "assistant", "content": ""})
            for start in range(0, len(answer), chunk):
                yield chunk_json({"content": answer[start : start + chunk]})
            yield chunk_json({}, "stop")
            yield "data: [DONE]\n\n"

        if body.get("stream"):
            return StreamingResponse(stream(), media_type="text/event-stream")
        message = {"role": "assistant", "content": answer}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return JSONResponse(
            {"id": "c1", "object": "chat.completion", "created": 0, "model": STUB_MODEL, "choices": [choice]}
        )

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])])


def ogx_config(folder: Path, port: int, stub_url: str, moderation_url: str) -> dict[str, Any]:
    """A light OGX 1.5.0 run config: the Responses provider with guardrails at ``moderation_url``."""
    kv = {"backend": "kv_default"}
    sql = {"backend": "sql_default"}
    return {
        "version": 2,
        "distro_name": "llamaguard-serve-test",
        "apis": ["responses", "inference", "tool_runtime", "vector_io", "files"],
        "providers": {
            "inference": [
                {
                    "provider_id": "stub",
                    "provider_type": "remote::openai",
                    "config": {"base_url": f"{stub_url}/v1", "api_key": "stub"},
                }
            ],
            "vector_io": [
                {
                    "provider_id": "sqlite-vec",
                    "provider_type": "inline::sqlite-vec",
                    "config": {"db_path": str(folder / "vec.db"), "persistence": {"namespace": "vector_io", **kv}},
                }
            ],
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"storage_dir": str(folder / "files"), "metadata_store": {"table_name": "files", **sql}},
                }
            ],
            "tool_runtime": [{"provider_id": "mcp", "provider_type": "remote::model-context-protocol"}],
            "responses": [
                {
                    "provider_id": "builtin",
                    "provider_type": "inline::builtin",
                    "config": {
                        "persistence": {"responses": {"table_name": "responses", **sql}},
                        "moderation_endpoint": moderation_url,
                    },
                }
            ],
        },
        "storage": {
            "backends": {
                "kv_default": {"type": "kv_sqlite", "db_path": str(folder / "kv.db")},
                "sql_default": {"type": "sql_sqlite", "db_path": str(folder / "sql.db")},
            },
            "stores": {
                "metadata": {"namespace": "registry", **kv},
                "inference": {"table_name": "inference_store", **sql},
                "conversations": {"table_name": "openai_conversations", **sql},
                "prompts": {"table_name": "prompts", **sql},
                "connectors": {"table_name": "connectors", **sql},
            },
        },
        "registered_resources": {
            "models": [
                {
                    "model_id": STUB_MODEL,
                    "provider_id": "stub",
                    "provider_model_id": STUB_MODEL,
                    "model_type": "llm",
                    "metadata": {},
                }
            ]
        },
        "server": {"host": "127.0.0.1", "port": port, "insecure": True},
    }


class OGXServer:
    """``ogx run`` in a subprocess from the OGX venv; TMPDIR inside ``folder`` (it leaves its resolved config,
    secrets included, there) and removed at :meth:`stop`."""

    def __init__(self, venv: Path, folder: Path, port: int, stub_url: str, moderation_url: str) -> None:
        self.folder = folder
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        config = folder / "config.yaml"
        config.write_text(json.dumps(ogx_config(folder, port, stub_url, moderation_url)))  # JSON is YAML
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update(
            TMPDIR=str(folder / "tmp"),
            NO_PROXY="127.0.0.1,localhost",
            TIKTOKEN_CACHE_DIR=str(venv / "tiktoken-cache"),
            HOME=str(folder),
            OGX_TELEMETRY_ENABLED="false",
        )
        self.log = folder / "ogx.log"
        self._log = self.log.open("w")
        self.process = subprocess.Popen(
            [str(venv / "bin" / "ogx"), "run", str(config), "--port", str(port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ogx exited with {self.process.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ogx was not healthy within {timeout} s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        shutil.rmtree(self.folder / "tmp", ignore_errors=True)
