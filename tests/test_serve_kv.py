"""OGX's growing answer over HTTP: a text that extends an earlier request's text runs only its new tokens.

OGX re-sends the whole accumulated answer to ``/v1/moderations`` every 200 characters. The served guard keeps
each checked conversation's KV (the transformers backend's prefix store), so the next request, from any
client, pays for the characters added since, and scores what a fresh check scores.
"""

from __future__ import annotations

import httpx
import pytest

from llamaguard_guardrails import LlamaGuard
from llamaguard_guardrails.backends.transformers import TransformersBackend
from llamaguard_guardrails.serve.app import create_app
from llamaguard_guardrails.serve.background import BackgroundServer
from test_kv_reuse import ForwardedTokens, shared_length

WORDS = "rivers carve deep valleys through soft rock while glaciers grind the harder stone beneath them".split()
ANSWER = " ".join(WORDS[(i * 7) % len(WORDS)] + ("." if i % 11 == 10 else "") for i in range(400))[:2000]


def fresh_guard(guard, prefix_caching: bool) -> LlamaGuard:
    real = guard.backend
    backend = TransformersBackend(
        real.model, real.tokens, real.pad_token_id, guard.prompts.decode, prefix_caching=prefix_caching
    )
    return LlamaGuard(backend, guard.prompts, cache_size=0)


@pytest.mark.parametrize("step", [200])  # OGX's _GUARDRAIL_BATCH_CHARS
def test_each_recheck_of_a_growing_answer_runs_only_its_new_tokens(guard, step):
    served, plain = fresh_guard(guard, True), fresh_guard(guard, False)
    cuts = [*range(step, len(ANSWER), step), len(ANSWER)]
    with BackgroundServer(create_app(served, warm=False)) as server, httpx.Client(base_url=server.url) as http:
        previous = None
        for cut in cuts:
            text = ANSWER[:cut]
            (prompt,) = served.build_prompts(text)
            counter = ForwardedTokens(guard.backend.model)
            try:
                result = http.post("/v1/moderations", json={"input": text}).json()["results"][0]
            finally:
                counter.close()
            if previous is None:
                reused = prompt.prefix_length  # the first check reuses the policy part only
                assert counter.passes[:2] == [prompt.prefix_length, len(prompt.input_ids) - reused + 1]
            else:
                end = previous.content_spans[-1][1]
                reused = shared_length(previous.input_ids[:end], prompt.input_ids)
                assert reused >= end - 2  # all of the earlier text but the token the cut split
                assert counter.passes[0] == len(prompt.input_ids) - reused + 1  # then, if unsafe, the category line
            want = plain.classify(text).unsafe_probability
            assert result["llama_guard"]["unsafe_probability"] == pytest.approx(want, abs=1e-5)
            previous = prompt
