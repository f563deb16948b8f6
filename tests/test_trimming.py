"""Trimming with hysteresis: a conversation over ``max_prompt_tokens`` loses its oldest messages in steps, so the
next turns of a growing agent share the trimmed beginning (and its KV) instead of losing one more message at every
turn. The last message and the instruction always stay, and every message left out is reported."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from llamaguard_guardrails import LlamaGuard
from llamaguard_guardrails.backends.transformers import TransformersBackend
from llamaguard_guardrails.core.conversation import parse_conversation
from llamaguard_guardrails.core.policy import DEFAULT_POLICY
from llamaguard_guardrails.core.prompt import EOT, trim_limit
from llamaguard_guardrails.loading import load_prompt_builder
from test_kv_reuse import ForwardedTokens

MAX_TOKENS = 640
INSTRUCTION = "Provide your safety assessment for ONLY THE LAST"
TAIL = f"{EOT}<|header_start|>assistant<|header_end|>"


def agent(steps: int) -> list[dict]:
    """A tool-calling agent: a task, then a tool call and its result per step; every message carries a marker
    ``m-NN`` (its index)."""
    messages: list[dict] = [{"role": "user", "content": "m-00 Find out why the nightly build of the service fails."}]
    for step in range(steps):
        n = len(messages)
        arguments = json.dumps({"query": f"m-{n:02d} build log of night {step}, errors and warnings only"})
        call = {"id": f"call{step}", "type": "function", "function": {"name": "search_logs", "arguments": arguments}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        result = f"m-{n + 1:02d} night {step}: linker warning in module {step}; tests passed; upload timed out."
        messages.append({"role": "tool", "tool_call_id": f"call{step}", "content": result})
    return messages


def markers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"m-(\d\d)", text)}


def test_the_watermark_moves_in_steps_of_a_quarter_of_the_limit():
    for max_tokens in (640, 1024, 8192):
        step = max_tokens // 4
        for total in range(max_tokens + 1, max_tokens + 3 * step + 1):
            limit = trim_limit(total, max_tokens)
            assert max_tokens - step < limit <= max_tokens
            assert (total - limit) % step == 0  # the tokens to drop, rounded up to whole steps
        # Within one step of growth the amount dropped stays the same: the cut does not move.
        assert len({total - trim_limit(total, max_tokens) for total in range(max_tokens + 1, max_tokens + step)}) == 1


def test_every_turn_of_a_growing_agent_keeps_the_guarantees_and_the_same_prompt(guard, test_model_dir):
    builder, fresh = guard.prompts, load_prompt_builder(test_model_dir)
    messages = agent(24)
    firsts = []
    for end in range(1, len(messages) + 1):
        conversation = parse_conversation(messages[:end])
        prompt, *history = builder.build(conversation, DEFAULT_POLICY, max_tokens=MAX_TOKENS)
        if end % 3 == 0:  # deterministic: another builder gives the same prompt
            assert fresh.build(conversation, DEFAULT_POLICY, max_tokens=MAX_TOKENS)[0].input_ids == prompt.input_ids
        text = builder.decode(prompt.input_ids)
        assert len(prompt) <= MAX_TOKENS and INSTRUCTION in text and text.endswith(TAIL)
        assert end - 1 in markers(text)  # the last message, whole
        omitted = set(prompt.omitted_messages)
        assert omitted == set(range(end - 1)) - markers(text)  # reported == missing
        assert prompt.omitted_messages == tuple(range(len(omitted)))  # the oldest ones
        # Nothing left out goes unchecked: history windows, each of one role, cover exactly the omitted messages.
        assert all(h.history and len(h) <= MAX_TOKENS for h in history) and not prompt.history
        assert set().union(*(markers(builder.decode(h.input_ids)) for h in history)) == omitted
        for h in history:
            lines = re.findall(r"^(User|Agent): ", builder.decode(h.input_ids), re.M)
            assert lines and set(lines) == {h.checked_role}
        if omitted:
            firsts.append(min(markers(text)))
    # The limit is crossed early and the history then grows by ~20 checks: the first kept message moves in a few
    # steps (the old rule dropped one more message at nearly every check).
    assert len(firsts) >= 20
    moves = sum(a != b for a, b in itertools.pairwise(firsts))
    assert 1 <= moves <= len(firsts) // 3


@pytest.fixture
def trimmed(guard):
    """Guards on the real test model with ``max_prompt_tokens=MAX_TOKENS``: conversation KV reused, and none."""
    real = guard.backend
    made = []
    for caching in (True, False):
        backend = TransformersBackend(
            real.model, real.tokens, real.pad_token_id, guard.prompts.decode, prefix_caching=caching
        )
        made.append(
            LlamaGuard(backend, guard.prompts, max_prompt_tokens=MAX_TOKENS, cache_size=0, micro_batching=False)
        )
    yield made
    for g in made:
        g.close()


def test_successive_checks_after_the_crossing_reuse_the_trimmed_history(trimmed, guard):
    reusing, plain = trimmed
    messages = agent(16)
    reused_history, after_crossing = 0, 0
    for end in range(1, len(messages) + 1):
        conversation = messages[:end]
        prompt = reusing.build_prompts(conversation)[0]
        counter = ForwardedTokens(guard.backend.model)
        try:
            score = reusing.classify(conversation).unsafe_probability
        finally:
            counter.close()
        if not prompt.omitted_messages:
            continue
        after_crossing += 1
        reused = len(prompt) + 1 - counter.passes[-1]  # the score pass runs the prompt + "\n\n" after what it reuses
        reused_history += reused > prompt.prefix_length + 50  # more than the policy part: the trimmed history
        if after_crossing % 4 == 1:
            assert score == pytest.approx(plain.classify(conversation).unsafe_probability, abs=1e-5)
    # A cut costs a full pass to the next check of each role ('User' and 'Agent' prompts differ from the task
    # line on, so each has its own history KV); the checks between cuts reuse the trimmed history. Dropping one
    # more message at every check, as before, reused it at none.
    assert after_crossing >= 10
    assert reused_history >= after_crossing // 2
