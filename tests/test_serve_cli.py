"""``llamaguard-guardrails serve`` as a user runs it: a subprocess on 127.0.0.1, the openai SDK, SIGTERM."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import httpx
import openai
import pytest

from stack_server import free_port


def start(model_dir, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llamaguard_guardrails.cli",
        "serve",
        "--model",
        str(model_dir),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    return process, f"http://127.0.0.1:{port}"


def wait_ready(process: subprocess.Popen, url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("serve was not ready")


def test_serve_answers_the_openai_sdk_with_keys_and_shuts_down_gracefully(test_model_dir):
    process, url = start(test_model_dir, "--api-key", "k1", env={"LLAMAGUARD_API_KEYS": "k2, k3"})
    try:
        wait_ready(process, url)
        for key in ("k1", "k3"):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
            assert len(client.moderations.create(input=["hello", "world"]).results) == 2
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="k4", max_retries=0).moderations.create(input="x")
        body = {"input": [f"Long text number {n}: " + "words of a long answer " * 80 for n in range(8)]}
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(
                httpx.post, f"{url}/v1/moderations", json=body, headers={"Authorization": "Bearer k2"}, timeout=120
            )
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            response = in_flight.result()
        assert response.status_code == 200 and len(response.json()["results"]) == 8  # finished, not dropped
        assert process.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_without_a_model_exits_2_with_one_line(tmp_path):
    process, _ = start(tmp_path / "missing")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert err.strip().splitlines()[-1].startswith("error: ") and "make-test-model" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("choice", "prefix_caching", "cache_conversations"),
    [("auto", None, True), ("on", True, True), ("policy", True, False), ("off", False, True)],
)
def test_prefix_caching_choices_reach_the_guard(choice, prefix_caching, cache_conversations):
    """``--prefix-caching policy`` keeps only the policy part's KV: no check's time depends on another client's."""
    import argparse

    from llamaguard_guardrails.cli import serve

    parser = argparse.ArgumentParser()
    serve.add_parsers(parser.add_subparsers())
    options = serve.guard_options(parser.parse_args(["serve", "--model", "m", "--prefix-caching", choice]))
    assert options["prefix_caching"] is prefix_caching and options["cache_conversations"] is cache_conversations
