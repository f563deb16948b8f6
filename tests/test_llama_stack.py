"""Llama Stack adapter, end to end: a real ``llama stack run`` with the provider on the test model.

- server A: the run config shipped in the package (safety only), through llama-stack-client;
- the same config through the in-process ``LlamaStackAsLibraryClient``;
- server B: safety + inference + responses, where inference is a ``remote::openai`` provider pointed
  at a tiny fake OpenAI-compatible server started here (canned answers), for the Responses API
  guardrails and for the client-side wrapper (``guard_client``);
- the provider implementation in-process with a scripted guard, where a verdict must be decided by
  the content (the random-weight test model's verdicts are meaningless).

Verdicts of the real test model are forced with shield params: threshold 0 blocks everything,
threshold 1 passes everything.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack_server import StackServer, free_port

from conftest import make_image, png_bytes

pytest.importorskip("llama_stack")
pytest.importorskip("llama_stack_client")

from llama_stack_client import APIError, AsyncLlamaStackClient, BadRequestError, LlamaStackClient
from llama_stack_client.lib.agents.agent import Agent
from llama_stack_client.lib.agents.client_tool import client_tool

from llamaguard_guardrails import InvalidPolicyError, Policy, UnsafeContentError
from llamaguard_guardrails.client import guard_client
from llamaguard_guardrails.llama_stack import RUN_CONFIG
from llamaguard_guardrails.testing import scripted_guard

pytestmark = [
    pytest.mark.llama_stack,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning"),  # shields.register/delete in 0.7.x
    pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated:DeprecationWarning"),  # llama-stack
]

MODEL = "fake/fake-llm"
PASS, BLOCK = {"threshold": 1.0}, {"threshold": 0.0}
PYTHON = {
    "type": "function",
    "name": "python",
    "description": "Run Python code.",
    "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
}


# -- a fake OpenAI-compatible inference server (canned answers) --------------------------------------


def canned_answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What the fake model says: decided by a scenario word in the last message."""
    last = messages[-1]
    content = last.get("content") or ""
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    if last.get("role") == "tool":
        return {"content": f"The tool returned: {content}"}
    if "scenario:unsafe-answer" in content:
        return {"content": "Sure. To build a bomb you need the following."}
    if "scenario:refusal" in content:  # the unsafe text only in the refusal, next to harmless content
        return {"content": "Here is a summary.", "refusal": "I will not explain how to build a bomb."}
    if "scenario:reasoning" in content:  # the unsafe text only in the reasoning
        return {"content": "Here you go.", "reasoning_content": "The user wants a bomb recipe; I will comply."}
    if "scenario:audio" in content:  # audio the guard cannot hear
        return {"content": "Listen.", "audio": {"id": "a1", "data": "UklGRg==", "transcript": "hi", "expires_at": 0}}
    if "scenario:truncated" in content:  # the stream breaks off after these words: no finish, no [DONE]
        return {"content": "To build a bomb you", "truncate": True}
    if "scenario:mcp" in content:  # calls the MCP server's tool (see mcp_server)
        arguments = json.dumps({"target": "the bomb depot"})
        return {
            "content": None,
            "tool_calls": [
                {"id": "call_m", "type": "function", "function": {"name": "launch", "arguments": arguments}}
            ],
        }
    if "scenario:code" in content:
        code = "import os; os.system('rm -rf /')" if "danger" in content else "print(6 * 7)"
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "python", "arguments": json.dumps({"code": code})},
        }
        return {"content": None, "tool_calls": [call]}
    return {"content": "Bread needs flour, water, salt and yeast."}


class FakeOpenAI(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, obj: Any, code: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            return self._json({"object": "list", "data": [{"id": "fake-llm", "object": "model", "created": 0}]})
        return self._json({"error": {"message": "not found"}}, 404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append(body)  # type: ignore[attr-defined]
        if not self.path.endswith("/chat/completions"):
            return self._json({"error": {"message": f"unsupported {self.path}"}}, 404)
        msg = canned_answer(body["messages"])
        calls = msg.get("tool_calls")
        cid, finish = f"chatcmpl-{uuid.uuid4().hex[:8]}", "tool_calls" if calls else "stop"
        head = {"id": cid, "created": int(time.time()), "model": body["model"]}
        extra = {key: msg[key] for key in ("refusal", "reasoning_content", "audio") if key in msg}
        if not body.get("stream"):
            message = {
                "role": "assistant",
                "content": msg["content"],
                **extra,
                **({"tool_calls": calls} if calls else {}),
            }
            choice = {"index": 0, "message": message, "finish_reason": finish}
            usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
            return self._json({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def send(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            chunk = {**head, "object": "chat.completion.chunk"}
            chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())

        send({"role": "assistant", "content": ""})
        if calls:
            call, args = calls[0], calls[0]["function"]["arguments"]
            function = {"name": call["function"]["name"], "arguments": ""}
            first = {"index": 0, "id": call["id"], "type": "function", "function": function}
            send({"tool_calls": [first]})
            send({"tool_calls": [{"index": 0, "function": {"arguments": args[:10]}}]})
            send({"tool_calls": [{"index": 0, "function": {"arguments": args[10:]}}]})
        else:
            if "reasoning_content" in msg:
                send({"reasoning_content": msg["reasoning_content"]})
            for n, word in enumerate(msg["content"].split(" ")):
                send({"content": word if n == 0 else " " + word})
            if "refusal" in msg:
                send({"refusal": msg["refusal"]})
        if msg.get("truncate"):  # the upstream fails mid-stream
            self.wfile.write(b'data: {"error": {"message": "upstream lost", "type": "server_error"}}\n\n')
            return
        send({}, finish)
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[Any]:
    """A real MCP server (streamable HTTP) with one harmless tool; tests may add tools to it."""
    import uvicorn
    from mcp.server.fastmcp import FastMCP

    port = free_port()
    mcp = FastMCP("lgtest", host="127.0.0.1", port=port, log_level="WARNING")

    @mcp.tool()
    def launch(target: str) -> str:
        """Launch the weather balloon towards a target."""
        return f"launched towards {target}"

    server = uvicorn.Server(uvicorn.Config(mcp.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    mcp.url = f"http://127.0.0.1:{port}/mcp"  # type: ignore[attr-defined]
    yield mcp
    server.should_exit = True
    thread.join(timeout=10)


# -- real llama stack servers -----------------------------------------------------------------------


def stack_env(home: Path, model_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LLAMA_STACK_CONFIG_DIR": str(home / "llama-home"),
        "LLAMA_STACK_LOG_FORMAT": "json",  # rich tracebacks stall the event loop ~5 s per error
        "LLAMAGUARD_MODEL": str(model_dir),
        "LLAMAGUARD_STACK_DIR": str(home / "store"),
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def safety_server(tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path) -> Iterator[StackServer]:
    """Server A: the shipped run config as is, on the test model."""
    home = tmp_path_factory.mktemp("stack-a")
    server = StackServer(RUN_CONFIG, stack_env(home, test_model_dir), home / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(safety_server: StackServer) -> LlamaStackClient:
    c = LlamaStackClient(base_url=safety_server.url)
    c.shields.register(
        shield_id="lg-pass", provider_shield_id="lg-pass", params={**PASS, "excluded_categories": ["S6"]}
    )
    c.shields.register(shield_id="lg-block", provider_shield_id="lg-block", params=BLOCK)
    return c


STUB_VECTOR_IO = '''
"""A do-nothing vector_io provider: the Responses API needs one; these tests never use it."""
from pydantic import BaseModel


class StubConfig(BaseModel):
    pass


class StubVectorIO:
    vector_store_store = None

    async def initialize(self):
        pass

    async def shutdown(self):
        pass


async def get_provider_impl(config, deps):
    return StubVectorIO()
'''

STUB_VECTOR_IO_PROVIDER = """
from llama_stack_api import Api, InlineProviderSpec


def get_provider_spec():
    return InlineProviderSpec(api=Api.vector_io, provider_type="inline::stub", module="lgtest_stub_vectorio",
                              config_class="lgtest_stub_vectorio.StubConfig")
"""


def full_config(home: Path, model_dir: Path, inference_url: str) -> Path:
    """Server B: our safety provider + a remote::openai inference stand-in + the Responses API."""
    store = home / "store"
    kv, sql = {"backend": "kv_default"}, {"backend": "sql_default"}
    config = {
        "version": 2,
        "distro_name": "llamaguard-guardrails-test",
        "apis": ["safety", "inference", "responses", "files", "tool_runtime", "vector_io"],
        "providers": {
            "safety": [
                {
                    "provider_id": "llamaguard",
                    "provider_type": "inline::llamaguard-guardrails",
                    "module": "llamaguard_guardrails.llama_stack",
                    "config": {"model": str(model_dir)},
                }
            ],
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::openai",
                    "config": {"base_url": inference_url, "api_key": "not-used"},
                }
            ],
            "responses": [
                {
                    "provider_id": "builtin",
                    "provider_type": "inline::builtin",
                    "config": {
                        "persistence": {
                            "agent_state": {"namespace": "agents", **kv},
                            "responses": {"table_name": "responses", **sql},
                        }
                    },
                }
            ],
            "files": [
                {
                    "provider_id": "files",
                    "provider_type": "inline::localfs",
                    "config": {
                        "storage_dir": str(store / "files"),
                        "metadata_store": {"table_name": "files_metadata", **sql},
                    },
                }
            ],
            "tool_runtime": [{"provider_id": "mcp", "provider_type": "remote::model-context-protocol", "config": {}}],
            "vector_io": [
                {"provider_id": "stub", "provider_type": "inline::stub", "module": "lgtest_stub_vectorio", "config": {}}
            ],
        },
        "storage": {
            "backends": {
                "kv_default": {"type": "kv_sqlite", "db_path": str(store / "kv.db")},
                "sql_default": {"type": "sql_sqlite", "db_path": str(store / "sql.db")},
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
            "models": [{"model_id": "fake-llm", "provider_id": "fake", "provider_model_id": "fake-llm"}],
            "shields": [
                {
                    "shield_id": "pass-all",
                    "provider_id": "llamaguard",
                    "provider_shield_id": "pass-all",
                    "params": PASS,
                },
                {
                    "shield_id": "block-all",
                    "provider_id": "llamaguard",
                    "provider_shield_id": "block-all",
                    "params": BLOCK,
                },
            ],
        },
        "server": {"host": "127.0.0.1"},
    }
    path = home / "run-full.yaml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    stub = home / "stubs" / "lgtest_stub_vectorio"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(STUB_VECTOR_IO)
    (stub / "provider.py").write_text(STUB_VECTOR_IO_PROVIDER)
    return path


@pytest.fixture(scope="module")
def full_server(
    tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path, fake_openai: ThreadingHTTPServer
) -> Iterator[StackServer]:
    home = tmp_path_factory.mktemp("stack-b")
    url = f"http://127.0.0.1:{fake_openai.server_address[1]}/v1"
    config = full_config(home, test_model_dir, url)
    env = stack_env(home, test_model_dir, PYTHONPATH=str(home / "stubs"))
    server = StackServer(config, env, home / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def raw_client(full_server: StackServer) -> LlamaStackClient:
    return LlamaStackClient(base_url=full_server.url)


def _rule(text: str) -> str | None:
    if "rm -rf" in text:
        return "S14"
    return "S9" if "bomb" in text.lower() else None


@pytest.fixture(scope="module")
def keyword_guard(test_model_dir: Path):
    """A real LlamaGuard (real prompt builder) whose model step flags "bomb" (S9) and "rm -rf" (S14)."""
    g = scripted_guard(test_model_dir, _rule)
    yield g
    g.close()


def data_url(width: int = 24, height: int = 16) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(make_image(width, height))).decode()


HISTORY = [
    {"role": "system", "content": "You are a helpful assistant with a python tool."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture? Then compute 6*7."},
            {"type": "image_url", "image_url": {"url": data_url()}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "python", "arguments": '{"code": "print(6*7)"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "42"},
    {"role": "assistant", "content": [{"type": "text", "text": "A red square; 6*7 = 42."}]},
]


# -- server A: the shipped run config through llama-stack-client -------------------------------------


def test_shipped_config_binds_localhost_and_registers_the_default_shield(safety_server, client):
    assert f"Uvicorn running on http://127.0.0.1:{safety_server.port}" in safety_server.log.read_text()
    shields = {s.identifier: s for s in client.shields.list()}
    assert shields["llama-guard-4"].provider_id == "llamaguard"
    assert shields["llama-guard-4"].provider_resource_id == "llama-guard-4"


def test_register_and_list_shields_with_params(client):
    shields = {s.identifier: s for s in client.shields.list()}
    assert shields["lg-pass"].params == {"threshold": 1.0, "excluded_categories": ["S6"]}
    assert shields["lg-block"].params == {"threshold": 0.0}
    assert client.shields.retrieve("lg-block").provider_resource_id == "lg-block"


def test_bad_shield_params_are_refused_with_a_clear_error(client):
    with pytest.raises(BadRequestError, match=r"unknown shield param.*threshhold.*supported"):
        client.shields.register(shield_id="lg-typo", params={"threshhold": 0})
    with pytest.raises(BadRequestError, match=r"S99"):
        client.shields.register(shield_id="lg-bad-code", params={"excluded_categories": ["S99"]})
    assert "lg-typo" not in {s.identifier for s in client.shields.list()}


def test_run_shield_safe_and_unsafe_on_the_real_test_model(client):
    messages = [{"role": "user", "content": "How do I bake bread?"}]
    assert client.safety.run_shield(shield_id="lg-pass", messages=messages).violation is None

    violation = client.safety.run_shield(shield_id="lg-block", messages=messages).violation
    assert violation is not None and violation.violation_level == "error"
    assert violation.user_message
    meta = violation.metadata
    assert isinstance(meta["violation_type"], list) and isinstance(meta["categories"], list)
    assert 0.0 <= meta["unsafe_probability"] <= 1.0 and meta["threshold"] == 0.0
    assert meta["shield_id"] == "lg-block" and meta["test_model"] is True
    # the test model answers in Llama Guard 4's format: a real unsafe verdict with its category codes
    assert meta["status"] == "unsafe" and meta["error"] is None
    assert meta["violation_type"] and all(code.startswith("S") for code in meta["violation_type"])
    assert len(meta["categories"]) == len(meta["violation_type"])


def test_run_shield_on_a_history_with_tool_calls_and_an_image(client):
    assert client.safety.run_shield(shield_id="lg-pass", messages=HISTORY).violation is None
    violation = client.safety.run_shield(shield_id="lg-block", messages=HISTORY).violation
    assert violation.violation_level == "error"
    assert violation.metadata["checked_role"] == "Agent"  # the last (assistant) message was checked


def test_a_message_that_cannot_be_checked_is_a_clear_400_not_a_pass(client):
    remote = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]}]
    with pytest.raises(BadRequestError, match=r"(?i)remote|url"):
        client.safety.run_shield(shield_id="lg-pass", messages=remote)


def test_moderations_per_input_with_all_categories(client):
    result = client.moderations.create(input=["How do I bake bread?", "Tell me a joke"], model="lg-block")
    assert result.model == "lg-block" and len(result.results) == 2
    for r in result.results:
        assert r.flagged is True and r.user_message
        assert len(r.categories) == 14 and all(isinstance(v, bool) for v in r.categories.values())
        assert "Indiscriminate Weapons" in r.categories and "Code Interpreter Abuse" in r.categories
        assert set(r.category_scores) == set(r.categories)
        assert isinstance(r.metadata["violation_type"], list)
    safe = client.moderations.create(input="How do I bake bread?", model="lg-pass").results[0]
    assert safe.flagged is False and not any(safe.categories.values()) and safe.user_message is None
    default = client.moderations.create(input="hello")  # the run config's default_shield_id
    assert default.model == "llama-guard-4" and len(default.results) == 1


def test_unknown_shield_is_a_clear_error(client):
    with pytest.raises(BadRequestError, match=r"Shield `no-such-shield` not served"):
        client.safety.run_shield(shield_id="no-such-shield", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(BadRequestError, match=r"No shield associated with provider_resource id no-such-model"):
        client.moderations.create(input="hi", model="no-such-model")


def connection_tracking_client(url: str) -> tuple[LlamaStackClient, list[int]]:
    """A client without retries that records the local port of the connection each response came on."""
    ports: list[int] = []

    def on_response(response: httpx.Response) -> None:
        ports.append(response.extensions["network_stream"].get_extra_info("client_addr")[1])

    http = httpx.Client(event_hooks={"response": [on_response]})
    return LlamaStackClient(base_url=url, max_retries=0, http_client=http), ports


def assert_clean_4xx_then_next_call_succeeds(client: LlamaStackClient, ports: list[int], bad: Any, match: str) -> None:
    """The bad request gets a 4xx saying what is wrong; the next call succeeds on the same connection."""
    with pytest.raises(BadRequestError, match=match):
        bad()
    refused_on = ports[-1]
    ok = client.safety.run_shield(shield_id="lg-pass", messages=[{"role": "user", "content": "hi"}])
    assert ok.violation is None
    assert ports[-1] == refused_on, "the server closed the connection after the 4xx"


def test_provider_errors_are_clean_4xx_and_keep_the_connection(client, safety_server):
    tracked, ports = connection_tracking_client(safety_server.url)
    tracked.shields.list()
    log_start = len(safety_server.log.read_text())
    cases = {
        "bad params": (lambda: tracked.shields.register(shield_id="x", params={"threshhold": 0}), r"threshhold"),
        "bad value": (lambda: tracked.shields.register(shield_id="y", params={"threshold": 7}), r"threshold"),
        "remote image": (
            lambda: tracked.safety.run_shield(
                shield_id="lg-pass",
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}],
            ),
            r"remote image URLs are not fetched",
        ),
        "empty moderation": (lambda: tracked.moderations.create(input=[], model="lg-pass"), r"input is empty"),
        "no room": (
            lambda: tracked.shields.register(
                shield_id="z", params={"custom_categories": {f"S{n}": "word " * 399 for n in range(15, 100)}}
            ),
            r"leaves no room",
        ),
        "too many inputs": (lambda: tracked.moderations.create(input=["hi"] * 65, model="lg-pass"), r"max_inputs"),
    }
    for name, (bad, match) in cases.items():
        for _ in range(3):
            try:
                assert_clean_4xx_then_next_call_succeeds(tracked, ports, bad, match)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {exc}") from exc
    assert "Traceback" not in safety_server.log.read_text()[log_start:]


def test_requests_past_the_providers_limits_are_refused_before_the_model(client, safety_server):
    """What one request may cost is bounded (max_inputs, max_request_chars), on a connection kept open."""
    big = "a" * (16 * 2**20 + 1)
    with httpx.Client(base_url=safety_server.url, timeout=60) as http:
        shield = http.post(
            "/v1/safety/run-shield", json={"shield_id": "lg-pass", "messages": [{"role": "user", "content": big}]}
        )
        assert shield.status_code == 413 and "max_request_chars" in shield.text
        moderation = http.post("/v1/moderations", json={"input": [big[: 9 * 2**20]] * 2, "model": "lg-pass"})
        assert moderation.status_code == 413 and "max_request_chars" in moderation.text
        assert http.post("/v1/moderations", json={"input": "hi", "model": "lg-pass"}).status_code == 200
    assert client.safety.run_shield(shield_id="lg-pass", messages=[{"role": "user", "content": "hi"}]).violation is None


@pytest.mark.xfail(strict=True, reason="llama-stack 0.7.3's router refuses unknown shields with a plain ValueError")
def test_unknown_shields_are_refused_by_llama_stack_itself_on_a_closed_connection(client, safety_server):
    """Documents the upstream gap (README): the provider is never called, so it cannot answer these."""
    tracked, ports = connection_tracking_client(safety_server.url)
    tracked.shields.list()
    bad = lambda: tracked.safety.run_shield(shield_id="nope", messages=[{"role": "user", "content": "hi"}])  # noqa: E731
    assert_clean_4xx_then_next_call_succeeds(tracked, ports, bad, r"not served")


# -- the same through the in-process library client --------------------------------------------------


@pytest.fixture(scope="module")
def library_client(tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path):
    from llama_stack.core.library_client import LlamaStackAsLibraryClient

    home = tmp_path_factory.mktemp("stack-lib")
    env = {k: v for k, v in stack_env(home, test_model_dir).items() if os.environ.get(k) != v}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        lib = LlamaStackAsLibraryClient(str(RUN_CONFIG))
        lib.initialize()
        yield lib
        lib.shutdown()


def test_library_client_shields_run_shield_and_moderations(library_client):
    lib = library_client
    lib.shields.register(shield_id="lib-pass", provider_shield_id="lib-pass", params=PASS)
    lib.shields.register(shield_id="lib-block", provider_shield_id="lib-block", params=BLOCK)
    assert {"llama-guard-4", "lib-pass", "lib-block"} <= {s.identifier for s in lib.shields.list()}

    assert lib.safety.run_shield(shield_id="lib-pass", messages=HISTORY).violation is None
    violation = lib.safety.run_shield(shield_id="lib-block", messages=HISTORY).violation
    assert violation.violation_level == "error" and isinstance(violation.metadata["violation_type"], list)

    moderation = lib.moderations.create(input=["a", "b"], model="lib-block")
    assert [r.flagged for r in moderation.results] == [True, True]
    assert lib.moderations.create(input="a", model="lib-pass").results[0].flagged is False

    with pytest.raises(ValueError, match=r"Shield `nope` not served"):
        lib.safety.run_shield(shield_id="nope", messages=[{"role": "user", "content": "hi"}])


# -- the provider in-process, with verdicts decided by content ---------------------------------------


class FakeShieldStore:
    """What Llama Stack's shields routing table offers the provider (``get_shield``/``list_shields``)."""

    def __init__(self, *shields: Any) -> None:
        self.shields = {s.identifier: s for s in shields}

    async def get_shield(self, request: Any) -> Any:
        if request.identifier not in self.shields:
            raise ValueError(f"Shield '{request.identifier}' not found")
        return self.shields[request.identifier]

    async def list_shields(self) -> Any:
        from llama_stack_api import ListShieldsResponse

        return ListShieldsResponse(data=list(self.shields.values()))


def make_impl(config: dict[str, Any], guard: Any = None, **shield_params: Any) -> Any:
    from llama_stack_api import Shield

    from llamaguard_guardrails.llama_stack import LlamaGuardProviderConfig, LlamaGuardSafetyImpl

    impl = LlamaGuardSafetyImpl(LlamaGuardProviderConfig(**config), guard=guard)
    shield = Shield(identifier="lg", provider_id="llamaguard", provider_resource_id="lg-model", params=shield_params)
    impl.shield_store = FakeShieldStore(shield)
    return impl


def test_provider_spec_has_no_inference_dependency():
    from llamaguard_guardrails.llama_stack.provider import get_provider_spec

    spec = get_provider_spec()
    assert spec.provider_type == "inline::llamaguard-guardrails"
    assert spec.api_dependencies == []
    # Llama Stack builds the provider with get_provider_impl of the spec's module; the run config names the package
    assert spec.module == "llamaguard_guardrails.llama_stack.provider"
    assert callable(importlib.import_module(spec.module).get_provider_impl)


def test_provider_config_reads_run_config_values_and_rejects_bad_ones():
    from pydantic import ValidationError

    from llamaguard_guardrails.llama_stack.provider.config import LlamaGuardProviderConfig, shield_policy

    # what ${env.X:=} substitution produces: strings, None for empty
    config = LlamaGuardProviderConfig(model="m", device=None, dtype=None, excluded_categories="S6, S8", threshold=0.4)
    policy = config.policy()
    assert policy.excluded_categories == {"S6", "S8"} and policy.threshold == 0.4
    assert LlamaGuardProviderConfig(excluded_categories=None).policy().excluded_categories == frozenset()
    with pytest.raises(ValidationError, match="threshold"):
        LlamaGuardProviderConfig(threshold=2)
    with pytest.raises(ValidationError, match="extra"):
        LlamaGuardProviderConfig(treshold=0.2)
    assert shield_policy(policy, {"threshold": 0.9}).excluded_categories == {"S6", "S8"}  # per key override
    assert shield_policy(policy, {"excluded_categories": []}).excluded_categories == frozenset()
    with pytest.raises(InvalidPolicyError, match="fail_mode"):
        shield_policy(policy, {"fail_mode": "sometimes"})


def test_the_provider_loads_the_guard_with_its_kv_reuse_settings(test_model_dir):
    impl = make_impl({"model": str(test_model_dir), "cache_conversations": False, "prefix_cache_mb": 64})
    guard = asyncio.run(impl.load_guard())
    try:
        assert guard.backend.prefix_caching is True  # CPU default
        assert guard.backend.cache_conversations is False and guard.backend.kv_store.max_bytes == 64 * 2**20
    finally:
        guard.close()


def test_the_example_run_config_is_the_shipped_one():
    example = Path(__file__).parents[1] / "examples" / "llama-stack" / "run.yaml"
    assert example.read_text() == RUN_CONFIG.read_text()


def test_violation_codes_names_and_the_responses_refusal_text(test_model_dir, keyword_guard):
    from llama_stack.providers.inline.responses.builtin.responses.utils import run_guardrails
    from llama_stack_api import RunModerationRequest, RunShieldRequest

    impl = make_impl({"model": str(test_model_dir)}, keyword_guard)

    async def scenario() -> None:
        safe = await impl.run_shield(RunShieldRequest(shield_id="lg", messages=HISTORY))
        assert safe.violation is None
        unsafe_history = [*HISTORY[:-1], {"role": "assistant", "content": "Here is how to build a bomb."}]
        violation = (await impl.run_shield(RunShieldRequest(shield_id="lg", messages=unsafe_history))).violation
        assert violation.violation_level.value == "error"
        assert violation.metadata["violation_type"] == ["S9"]
        assert violation.metadata["categories"] == ["Indiscriminate Weapons"]
        assert violation.metadata["status"] == "unsafe" and violation.metadata["checked_role"] == "Agent"

        moderation = await impl.run_moderation(RunModerationRequest(input=["bread", "a bomb"], model="lg-model"))
        ok, flagged = moderation.results
        assert ok.flagged is False and flagged.flagged is True
        assert flagged.categories["Indiscriminate Weapons"] is True and sum(flagged.categories.values()) == 1
        assert flagged.category_scores["Indiscriminate Weapons"] > 0.5 and flagged.metadata["shield_id"] == "lg"

        # the Responses API joins metadata["violation_type"] into its refusal: it must be a list
        class SafetyAPI:
            routing_table = impl.shield_store
            run_moderation = impl.run_moderation

        refusal = await run_guardrails(SafetyAPI(), "how to build a bomb", ["lg"])
        assert refusal.endswith("(flagged for: Indiscriminate Weapons) (violation type: S9)")
        assert await run_guardrails(SafetyAPI(), "how to bake bread", ["lg"]) is None

    asyncio.run(scenario())


def test_shield_params_override_the_provider_policy(test_model_dir, keyword_guard):
    from llama_stack_api import RunShieldRequest

    impl = make_impl({"model": str(test_model_dir)}, keyword_guard, excluded_categories=["S9"])
    request = RunShieldRequest(shield_id="lg", messages=[{"role": "user", "content": "a bomb"}])
    assert asyncio.run(impl.run_shield(request)).violation is None  # S9 excluded by this shield


def test_bad_requests_raise_typed_errors_that_llama_stack_answers_cleanly(test_model_dir, keyword_guard):
    from fastapi import HTTPException
    from llama_stack_api import RunModerationRequest, RunShieldRequest, Shield

    from llamaguard_guardrails import InvalidConversationError

    impl = make_impl({"model": str(test_model_dir)}, keyword_guard)
    bad_shield = Shield(identifier="b", provider_id="llamaguard", provider_resource_id="b", params={"treshold": 1})
    with pytest.raises(InvalidPolicyError, match="treshold") as params:
        asyncio.run(impl.register_shield(bad_shield))
    remote = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}
    with pytest.raises(InvalidConversationError, match="remote") as conversation:
        asyncio.run(impl.run_shield(RunShieldRequest(shield_id="lg", messages=[remote])))
    with pytest.raises(InvalidConversationError, match="empty") as empty:
        asyncio.run(impl.run_moderation(RunModerationRequest(input=[], model="lg-model")))
    with pytest.raises(ValueError, match="nope") as unknown:
        asyncio.run(impl.run_shield(RunShieldRequest(shield_id="nope", messages=[{"role": "user", "content": "x"}])))
    with pytest.raises(ValueError, match="other-model") as unknown_model:
        asyncio.run(impl.run_moderation(RunModerationRequest(input="x", model="other-model")))
    statuses = [e.value.status_code for e in (params, conversation, empty, unknown, unknown_model)]
    assert statuses == [400, 400, 400, 404, 404]
    assert all(isinstance(e.value, HTTPException) for e in (params, conversation, empty, unknown, unknown_model))
    assert str(params.value).startswith("shield 'b': unknown shield param")  # the message, no status prefix


def test_shutdown_closes_the_guard(test_model_dir):
    from llamaguard_guardrails.testing import keyword_rule

    guard = scripted_guard(test_model_dir, keyword_rule("bomb"))
    closed = []
    close = guard.close
    guard.close = lambda: (closed.append(True), close())  # type: ignore[method-assign]
    impl = make_impl({"model": str(test_model_dir)}, guard)
    asyncio.run(impl.shutdown())
    assert closed == [True] and impl._guard is None


@pytest.mark.parametrize(("p", "outcome"), [(0.1, "allow"), (0.3, "review"), (0.7, "block")])
def test_a_shields_grey_zone_is_refused_and_says_review(test_model_dir, p, outcome):
    """A shield cannot pause for a human: a verdict in ``params["review_threshold"]``'s grey zone is refused, and
    its metadata says ``review`` so the application can route it to one."""
    from llama_stack_api import RunShieldRequest

    from llamaguard_guardrails.testing import marker_category, marker_probability

    guard = scripted_guard(test_model_dir, marker_category, probability=marker_probability, cache_size=0)
    impl = make_impl({"model": str(test_model_dir)}, guard, review_threshold=0.2)
    text = f"Forward the payroll file to this address [p={p}] [cat=S7]"
    request = RunShieldRequest(shield_id="lg", messages=[{"role": "user", "content": text}])
    violation = asyncio.run(impl.run_shield(request)).violation
    if outcome == "allow":
        assert violation is None
    else:
        assert violation.violation_level.value == "error" and violation.metadata["outcome"] == outcome
    guard.close()


def test_a_guard_that_cannot_load_fails_closed_or_open_never_silently(tmp_path):
    from llama_stack_api import RunModerationRequest, RunShieldRequest

    missing = {"model": str(tmp_path / "no-model"), "load_on_startup": False}
    request = RunShieldRequest(shield_id="lg", messages=[{"role": "user", "content": "hi"}])

    closed = make_impl(missing)
    violation = asyncio.run(closed.run_shield(request)).violation
    assert violation.violation_level.value == "error" and violation.metadata["status"] == "error"
    assert "ModelNotFoundError" in violation.metadata["error"]
    assert asyncio.run(closed.run_moderation(RunModerationRequest(input="hi"))).results[0].flagged is True

    opened = make_impl({**missing, "fail_mode": "open"})
    violation = asyncio.run(opened.run_shield(request)).violation
    assert violation.violation_level.value == "warn" and violation.metadata["error"]
    moderation = asyncio.run(opened.run_moderation(RunModerationRequest(input="hi"))).results[0]
    assert moderation.flagged is False and moderation.metadata["error"]


# -- server B: Responses API guardrails (server side) ------------------------------------------------


def test_responses_guardrails_use_the_shield(raw_client):
    passed = raw_client.responses.create(model=MODEL, input="How do I bake bread?", guardrails=["pass-all"])
    assert passed.output_text == "Bread needs flour, water, salt and yeast."
    blocked = raw_client.responses.create(model=MODEL, input="How do I bake bread?", guardrails=["block-all"])
    assert "Bread" not in str(blocked.output)
    assert blocked.output[0].content[0].type == "refusal" and blocked.output[0].content[0].refusal


# -- server B: the client-side wrapper ----------------------------------------------------------------


def test_wrapper_on_the_real_test_model_passes_and_blocks_before_the_call(raw_client, guard, fake_openai):
    messages = [{"role": "user", "content": "How do I bake bread?"}]
    passing = guard_client(raw_client, guard, policy=Policy(threshold=1.0))
    answer = passing.chat.completions.create(model=MODEL, messages=messages)
    assert answer.choices[0].message.content == "Bread needs flour, water, salt and yeast."

    blocking = guard_client(raw_client, guard, policy=Policy(threshold=0.0))
    before = len(fake_openai.requests)
    with pytest.raises(UnsafeContentError) as info:
        blocking.chat.completions.create(model=MODEL, messages=messages)
    assert info.value.stage == "input" and not info.value.verdict.safe
    assert len(fake_openai.requests) == before  # the model was never called


def test_wrapper_chat_blocks_an_unsafe_answer_and_a_code_tool_call(raw_client, keyword_guard):
    guarded = guard_client(raw_client, keyword_guard)
    with pytest.raises(UnsafeContentError) as info:
        guarded.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "scenario:unsafe-answer"}])
    assert info.value.stage == "output" and info.value.verdict.categories == ["S9"]

    with pytest.raises(UnsafeContentError) as info:
        guarded.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "scenario:code danger"}])
    assert info.value.stage == "tool_call" and info.value.verdict.categories == ["S14"]
    assert "[code interpreter call: python]" in keyword_guard.backend.seen[-1]

    safe_call = guarded.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "scenario:code"}])
    assert safe_call.choices[0].message.tool_calls[0].function.name == "python"


def test_wrapper_checks_tool_results_sent_back_before_the_call(raw_client, keyword_guard, fake_openai):
    guarded = guard_client(raw_client, keyword_guard)
    history = [
        {"role": "user", "content": "scenario:code"},
        {"role": "assistant", "content": None, "tool_calls": [HISTORY[2]["tool_calls"][0]]},
    ]
    ok = guarded.chat.completions.create(
        model=MODEL, messages=[*history, {"role": "tool", "tool_call_id": "c1", "content": "42"}]
    )
    assert ok.choices[0].message.content == "The tool returned: 42"
    before = len(fake_openai.requests)
    with pytest.raises(UnsafeContentError) as info:
        guarded.chat.completions.create(
            model=MODEL, messages=[*history, {"role": "tool", "tool_call_id": "c1", "content": "bomb recipe"}]
        )
    assert info.value.stage == "tool_result" and len(fake_openai.requests) == before


def test_wrapper_chat_streaming_releases_nothing_unchecked(raw_client, keyword_guard):
    guarded = guard_client(raw_client, keyword_guard)
    messages = [{"role": "user", "content": "How do I bake bread?"}]
    chunks = list(guarded.chat.completions.create(model=MODEL, messages=messages, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == canned_answer(messages)["content"]

    received = []
    stream = guarded.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "scenario:unsafe-answer"}], stream=True
    )
    with pytest.raises(UnsafeContentError) as info:
        for chunk in stream:
            received.append(chunk)
    assert received == [] and info.value.stage == "output"

    stream = guarded.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "scenario:code danger"}], stream=True
    )
    with pytest.raises(UnsafeContentError) as info:
        list(stream)
    assert info.value.stage == "tool_call" and info.value.verdict.categories == ["S14"]  # reassembled fragments


def test_wrapper_refuse_mode_returns_refusals(raw_client, keyword_guard):
    guarded = guard_client(raw_client, keyword_guard, on_block="refuse", refusal_message="Not allowed.")
    blocked_output = guarded.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "scenario:unsafe-answer"}]
    )
    assert blocked_output.choices[0].message.content == "Not allowed."
    assert blocked_output.choices[0].finish_reason == "content_filter"
    with guarded.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a bomb?"}], stream=True
    ) as s:
        chunks = list(s)
    assert [c.choices[0].delta.content for c in chunks] == ["Not allowed."]
    fine = guarded.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "bread?"}])
    assert fine.choices[0].finish_reason == "stop"

    response = guarded.responses.create(model=MODEL, input="scenario:unsafe-answer")
    assert response.output_text == "Not allowed."
    events = list(guarded.responses.create(model=MODEL, input="scenario:unsafe-answer", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "Not allowed."
    assert "bomb" not in json.dumps([e.model_dump() for e in events]).lower()


def test_wrapper_reports_every_verdict_and_words_refusals_per_stage(raw_client, keyword_guard):
    seen: list[tuple[bool, str]] = []
    guarded = guard_client(
        raw_client,
        keyword_guard,
        on_block="refuse",
        refusal_message=lambda verdict, stage: f"Blocked at {stage} ({', '.join(verdict.categories)}).",
        on_verdict=lambda verdict, stage: seen.append((verdict.safe, stage)),
    )
    fine = guarded.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "bread?"}])
    assert fine.choices[0].finish_reason == "stop" and seen == [(True, "input"), (True, "output")]
    seen.clear()
    answer = guarded.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "scenario:unsafe-answer"}]
    )
    assert answer.choices[0].message.content == "Blocked at output (S9)."
    assert seen == [(True, "input"), (False, "output")]
    seen.clear()
    events = list(guarded.responses.create(model=MODEL, input="a bomb?", stream=True))
    assert events[-1].response.output_text == "Blocked at input (S9)." and seen == [(False, "input")]
    with pytest.raises(InvalidPolicyError, match="on_block"):
        guard_client(raw_client, keyword_guard, on_block="end")


def test_wrapper_responses_sync_and_streaming(raw_client, keyword_guard):
    guarded = guard_client(raw_client, keyword_guard)
    assert guarded.responses.create(model=MODEL, input="bread?").output_text.startswith("Bread needs")
    events = list(guarded.responses.create(model=MODEL, input="bread?", instructions="Be brief.", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.output_text.startswith("Bread needs")

    for stream in (False, True):
        with pytest.raises(UnsafeContentError) as info:
            result = guarded.responses.create(model=MODEL, input="scenario:unsafe-answer", stream=stream)
            list(result) if stream else None
        assert info.value.stage == "output"
    with pytest.raises(UnsafeContentError) as info:
        guarded.responses.create(
            model=MODEL, input=[{"role": "user", "content": "scenario:code danger"}], tools=[PYTHON]
        )
    assert info.value.stage == "tool_call" and info.value.verdict.categories == ["S14"]
    with pytest.raises(UnsafeContentError) as info:
        guarded.responses.create(
            model=MODEL, input=[{"type": "function_call_output", "call_id": "c1", "output": "bomb"}]
        )
    assert info.value.stage == "tool_result"


def test_wrapper_async_client(full_server, keyword_guard):
    async def scenario() -> None:
        guarded = guard_client(AsyncLlamaStackClient(base_url=full_server.url), keyword_guard)
        answer = await guarded.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "bread?"}])
        assert answer.choices[0].message.content.startswith("Bread needs")
        stream = await guarded.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "bread?"}], stream=True
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]).startswith("Bread")
        stream = await guarded.responses.create(model=MODEL, input="scenario:unsafe-answer", stream=True)
        with pytest.raises(UnsafeContentError):
            [event async for event in stream]
        with pytest.raises(UnsafeContentError):
            await guarded.responses.create(model=MODEL, input="a bomb please")

    asyncio.run(scenario())


def test_wrapper_guards_agent_turns(raw_client, keyword_guard):
    tool_output = {"value": "42"}

    @client_tool
    def python(code: str) -> str:
        """Run Python code.

        :param code: the code to run
        """
        return tool_output["value"]

    agent = Agent(guard_client(raw_client, keyword_guard), model=MODEL, instructions="You help.", tools=[python])
    turn = agent.create_turn([{"role": "user", "content": "scenario:code"}], agent.create_session("a"), stream=False)
    assert turn.output_text == 'The tool returned: "42"'

    tool_output["value"] = "the bomb is ready"
    with pytest.raises(UnsafeContentError) as info:
        agent.create_turn([{"role": "user", "content": "scenario:code"}], agent.create_session("b"), stream=False)
    assert info.value.stage == "tool_result"
    with pytest.raises(UnsafeContentError) as info:
        agent.create_turn(
            [{"role": "user", "content": "scenario:code danger"}], agent.create_session("c"), stream=False
        )
    assert info.value.stage == "tool_call"


def test_wrapper_refuses_to_be_bypassed_silently(raw_client, keyword_guard):
    guarded = guard_client(raw_client, keyword_guard)
    with pytest.raises(AttributeError, match="unwrapped"):
        guarded.chat.completions.with_raw_response  # noqa: B018
    assert isinstance(guarded.with_options(timeout=30), type(guarded))
    assert guarded.unwrapped is raw_client
    with pytest.raises(TypeError, match="LlamaStackClient"):
        guard_client(object(), keyword_guard)


# -- server B: every field of the answer is checked ---------------------------------------------------


def blocked_stage(call: Any, stream: bool) -> str:
    """Run ``call``: it must raise UnsafeContentError before anything is released. Returns the stage."""
    received: list[Any] = []
    with pytest.raises(UnsafeContentError) as info:
        result = call()
        for item in result if stream else [result]:
            received.append(item)
    assert received == [], "released before the check returned"
    return info.value.stage


def test_wrapper_checks_a_refusal_sent_next_to_content(raw_client, keyword_guard):
    guarded = guard_client(raw_client, keyword_guard)
    messages = [{"role": "user", "content": "scenario:refusal"}]
    for stream in (False, True):
        chat = lambda: guarded.chat.completions.create(model=MODEL, messages=messages, stream=stream)  # noqa: B023, E731
        assert blocked_stage(chat, stream) == "output"
    # llama-stack streams the refusal as response.refusal.delta but leaves it out of the finished items
    stream = lambda: guarded.responses.create(model=MODEL, input="scenario:refusal", stream=True)  # noqa: E731
    assert blocked_stage(stream, True) == "output"
    unguarded = list(raw_client.responses.create(model=MODEL, input="scenario:refusal", stream=True))
    assert any(e.type == "response.refusal.delta" and "bomb" in e.delta for e in unguarded)


def test_wrapper_checks_streamed_and_returned_reasoning(raw_client, keyword_guard):
    guarded = guard_client(raw_client, keyword_guard)
    messages = [{"role": "user", "content": "scenario:reasoning"}]
    for stream in (False, True):
        chat = lambda: guarded.chat.completions.create(model=MODEL, messages=messages, stream=stream)  # noqa: B023, E731
        assert blocked_stage(chat, stream) == "output"
    assert "[reasoning] The user wants a bomb recipe" in keyword_guard.backend.seen[-1]


def test_wrapper_refuses_an_answer_with_audio_it_cannot_hear(raw_client, keyword_guard):
    from llamaguard_guardrails import InvalidConversationError

    guarded = guard_client(raw_client, keyword_guard)
    with pytest.raises(InvalidConversationError, match=r"'audio'.*must see it or refuse it"):
        guarded.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "scenario:audio"}])


def test_wrapper_checks_the_deltas_of_a_stream_that_fails(raw_client, keyword_guard):
    guarded = guard_client(raw_client, keyword_guard)
    # the upstream fails mid-answer: llama-stack sends the text deltas, then response.failed with no output
    unguarded = [e.type for e in raw_client.responses.create(model=MODEL, input="scenario:truncated", stream=True)]
    assert "response.output_text.delta" in unguarded and unguarded[-1] == "response.failed"
    assert "response.output_item.done" not in unguarded
    stream = lambda: guarded.responses.create(model=MODEL, input="scenario:truncated", stream=True)  # noqa: E731
    assert blocked_stage(stream, True) == "output"
    # a chat stream that fails releases nothing either: the error comes before the first chunk
    received: list[Any] = []
    with pytest.raises(APIError):
        for chunk in guarded.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "scenario:truncated"}], stream=True
        ):
            received.append(chunk)
    assert received == []


def test_wrapper_checks_mcp_approval_requests_and_listed_tools(raw_client, keyword_guard, mcp_server):
    guarded = guard_client(raw_client, keyword_guard)
    tools = [{"type": "mcp", "server_label": "lg", "server_url": mcp_server.url, "require_approval": "always"}]
    for stream in (False, True):
        call = lambda: guarded.responses.create(model=MODEL, input="scenario:mcp", tools=tools, stream=stream)  # noqa: B023, E731
        assert blocked_stage(call, stream) == "tool_call"
    assert '[tool call: launch] {"target": "the bomb depot"}' in keyword_guard.backend.seen[-1]
    fine = guarded.responses.create(model=MODEL, input="bread?", tools=tools)
    assert [item.type for item in fine.output] == ["mcp_list_tools", "message"]

    @mcp_server.tool()
    def detonate() -> str:
        """Detonates a bomb."""
        return "boom"

    for stream in (False, True):
        call = lambda: guarded.responses.create(model=MODEL, input="bread?", tools=tools, stream=stream)  # noqa: B023, E731
        assert blocked_stage(call, stream) == "tool_result"  # the tool descriptions the model reads


IMAGE_ITEM = {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "iVBORw0KGgo="}
NAMELESS_ARGUMENTS = json.dumps({"path": "/"})


class UncontrolledStack(BaseHTTPRequestHandler):
    """A Llama Stack server you do not control. ``responses.create`` answers with an item type (or stream event)
    the client-side guard does not know: an image generation whose picture it cannot see; asked for
    ``nameless``, chat completions and responses propose a tool call without a name."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path.endswith("/chat/completions"):
            return self._answer(body, *self._nameless_chat(body["model"]))
        head = {"id": "resp_1", "object": "response", "created_at": 0, "model": body["model"]}
        if "nameless" in json.dumps(body["input"]):
            item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "arguments": NAMELESS_ARGUMENTS}
            extra = [{"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": NAMELESS_ARGUMENTS}]
        elif "partial" in json.dumps(body["input"]):  # a known item, and an unknown event
            item = {"type": "message", "role": "assistant", "content": "Your picture."}
            extra = [
                {"type": "response.image_generation_call.partial_image", "item_id": "ig_1", "partial_image_b64": "AA"}
            ]
        else:
            item, extra = IMAGE_ITEM, []
        done = {**head, "status": "completed", "output": [item]}
        events = [
            {"type": "response.created", "response": {**head, "status": "in_progress", "output": []}},
            {"type": "response.output_item.added", "output_index": 0, "item": item},
            *extra,
            {"type": "response.completed", "response": done},
        ]
        self._answer(body, done, events)

    @staticmethod
    def _nameless_chat(model: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        head = {"id": "chatcmpl-1", "created": 0, "model": model}
        call = {"id": "call_1", "type": "function", "function": {"arguments": NAMELESS_ARGUMENTS}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        completion = {
            **head,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        }
        deltas = [{"role": "assistant", "tool_calls": [{**call, "index": 0}]}, {}]
        chunks = [
            {**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": f}]}
            for d, f in zip(deltas, (None, "tool_calls"), strict=True)
        ]
        return completion, chunks

    def _answer(self, body: dict[str, Any], whole: dict[str, Any], events: list[dict[str, Any]]) -> None:
        if not body.get("stream"):
            data = json.dumps(whole).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for n, event in enumerate(events):
            self.wfile.write(f"data: {json.dumps({**event, 'sequence_number': n})}\n\n".encode())


@pytest.fixture
def uncontrolled_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), UncontrolledStack)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_wrapper_refuses_output_items_and_stream_events_it_does_not_know(keyword_guard, uncontrolled_url):
    from llamaguard_guardrails import InvalidConversationError

    raw = LlamaStackClient(base_url=uncontrolled_url, max_retries=0)
    assert raw.responses.create(model=MODEL, input="draw").output[0].type == "image_generation_call"
    guarded = guard_client(raw, keyword_guard)
    with pytest.raises(InvalidConversationError, match=r"type 'image_generation_call'.*cannot check"):
        guarded.responses.create(model=MODEL, input="draw")
    for prompt, match in (("draw", "image_generation_call"), ("draw partial", "partial_image")):
        received: list[Any] = []
        with pytest.raises(InvalidConversationError, match=match):
            for event in guarded.responses.create(model=MODEL, input=prompt, stream=True):
                received.append(event)
        assert received == []


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")  # the client's types want a name
def test_wrapper_refuses_a_tool_call_without_a_name_as_the_core_does(keyword_guard, uncontrolled_url):
    """A nameless call is not checked as some placeholder tool and released: every path raises, nothing is released."""
    from llamaguard_guardrails import InvalidConversationError

    raw = LlamaStackClient(base_url=uncontrolled_url, max_retries=0)
    ask = [{"role": "user", "content": "nameless"}]
    assert raw.chat.completions.create(model=MODEL, messages=ask).choices[0].message.tool_calls[0].function.name is None
    guarded = guard_client(raw, keyword_guard)
    calls = {
        "chat": lambda stream: guarded.chat.completions.create(model=MODEL, messages=ask, stream=stream),
        "responses": lambda stream: guarded.responses.create(model=MODEL, input="nameless", stream=stream),
    }
    for api, call in calls.items():
        for stream in (False, True):
            received: list[Any] = []
            with pytest.raises(InvalidConversationError, match="no function name"):
                result = call(stream)
                received.extend(result if stream else [result])
            assert received == [], (api, stream)

    async def streamed_async(api: str) -> list[Any]:
        aguarded = guard_client(AsyncLlamaStackClient(base_url=uncontrolled_url, max_retries=0), keyword_guard)
        if api == "chat":
            stream = await aguarded.chat.completions.create(model=MODEL, messages=ask, stream=True)
        else:
            stream = await aguarded.responses.create(model=MODEL, input="nameless", stream=True)
        return [event async for event in stream]

    for api in calls:
        with pytest.raises(InvalidConversationError, match="no function name"):
            asyncio.run(streamed_async(api))
