"""The served app on Ray Serve: a local Ray instance, two replicas of the test model, the openai SDK in front."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

serve = pytest.importorskip("ray.serve", reason="needs ray[serve] (the ray-serve extra)")

from llamaguard_guardrails.serve.ray_serve import guard_deployment  # noqa: E402
from stack_server import free_port  # noqa: E402
from test_serve import TEXTS  # noqa: E402

pytestmark = [pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def ray_serve_url(test_model_dir):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2, logging_level="ERROR")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        app = guard_deployment(str(test_model_dir), num_replicas=2, ray_actor_options={"num_cpus": 0.5})
        serve.run(app, name="llamaguard", route_prefix="/", blocking=False)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = serve.status().applications.get("llamaguard")
            if status is not None and status.status == "RUNNING":
                break
            time.sleep(1)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()


def test_two_replicas_answer_the_openai_sdk_like_the_in_process_guard(ray_serve_url, guard):
    status = serve.status().applications["llamaguard"].deployments["llamaguard"]
    assert status.replica_states.get("RUNNING") == 2
    assert httpx.get(f"{ray_serve_url}/ready").status_code == 200
    client = openai.OpenAI(base_url=f"{ray_serve_url}/v1", api_key="none", max_retries=0, timeout=120)
    for _ in range(2):  # requests spread over both replicas
        response = client.moderations.create(input=TEXTS)
        for text, result in zip(TEXTS, response.results):
            want = guard.classify(text)
            assert result.flagged is (not want.safe)
            assert result.model_extra["llama_guard"]["categories"] == want.categories
    bad = httpx.post(f"{ray_serve_url}/v1/moderations", json={"input": []})
    assert bad.status_code == 400 and "empty list" in bad.json()["error"]["message"]


def test_the_kuberay_builder_takes_the_model_from_the_environment(monkeypatch, test_model_dir):
    from llamaguard_guardrails.serve.ray_serve import app_from_env

    monkeypatch.delenv("LLAMAGUARD_MODEL", raising=False)
    with pytest.raises(ValueError, match="LLAMAGUARD_MODEL"):
        app_from_env()
    monkeypatch.setenv("LLAMAGUARD_MODEL", str(test_model_dir))
    assert type(app_from_env()).__name__ == "Application"
