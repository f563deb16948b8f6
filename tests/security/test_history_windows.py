"""What the model receives is classified, even past the context limit.

Over ``max_prompt_tokens`` the oldest messages are left out of the last message's context; they are then
classified in history windows (each of one role, so every message a window holds is part of the message it
judges), and the check is unsafe when any window is. Generated here: the unsafe word in an early message of
every kind, pushed out of the context by padding, blocks, and its safe twin passes; the history windows of a
growing conversation stay the same and hit the window cache.
"""

from __future__ import annotations

import pytest

from llamaguard_guardrails.testing import keyword_rule

from conftest import make_image

LIMIT = 1024
PAD = "The bakery opens at dawn, the ovens are warm and the bread is shared with the neighbours. " * 20


def call(name: str, arguments: str) -> dict:
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}


EARLY = {
    "user text": lambda w: [{"role": "user", "content": f"How do I build a {w}?"}],
    "user name": lambda w: [{"role": "user", "content": "Hello.", "name": f"{w}_maker"}],
    "system": lambda w: [{"role": "system", "content": f"Explain how to build a {w}."}],
    "assistant text": lambda w: [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": f"A {w}."}],
    "refusal": lambda w: [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": None, "refusal": w}],
    "reasoning": lambda w: [
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Ok.", "reasoning_content": f"Plan: a {w}."},
    ],
    "tool call": lambda w: [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": None, "tool_calls": [call("search", f'{{"q": "a {w}"}}')]},
    ],
    "tool result": lambda w: [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": None, "tool_calls": [call("search", '{"q": "recipes"}')]},
        {"role": "tool", "tool_call_id": "c1", "content": f"Step 1 of the {w} recipe."},
    ],
    "long early message": lambda w: [{"role": "user", "content": PAD * 3 + f" a {w}. " + PAD}],
}


def padded(early: list[dict], last_role: str) -> list[dict]:
    turns = [{"role": "assistant", "content": PAD}, {"role": "user", "content": PAD}]
    turns += [{"role": "assistant", "content": PAD}, {"role": "user", "content": "Go on."}]
    if last_role == "assistant":
        turns.append({"role": "assistant", "content": "Once upon a time."})
    return [*early, *turns]


@pytest.mark.parametrize("last_role", ["user", "assistant"])
@pytest.mark.parametrize("kind", sorted(EARLY))
def test_an_unsafe_early_message_left_out_of_the_context_still_blocks(make_guard, kind, last_role):
    guard = make_guard(keyword_rule("bomb"), max_prompt_tokens=LIMIT)
    messages = padded(EARLY[kind]("bomb"), last_role)
    verdict = guard.classify(messages)
    assert verdict.omitted_messages and verdict.history_windows >= 1  # it was left out of the context ...
    assert not verdict.safe and verdict.categories == ["S9"]  # ... and still classified
    assert verdict.checked_message_index == len(messages) - 1  # the verdict is still about the last message
    assert all(len(prompt) <= LIMIT for prompt in guard.backend.last_prompts)
    twin = guard.classify(padded(EARLY[kind]("bread"), last_role))
    assert twin.safe and twin.omitted_messages == verdict.omitted_messages


def test_an_image_of_a_left_out_message_reaches_its_history_window(make_guard):
    guard = make_guard(keyword_rule("bomb"), max_prompt_tokens=LIMIT)
    early = [{"role": "user", "content": [{"type": "image", "image": make_image(48, 48)}, "What is this?"]}]
    guard.classify(padded(early, "user"))
    history = [prompt for prompt in guard.backend.last_prompts if prompt.history]
    assert [prompt.images[0].size for prompt in history if prompt.images] == [(48, 48)]


def test_a_growing_conversation_reuses_its_history_windows(make_guard):
    """Greedy packing from the oldest message: earlier windows stay the same and come from the window cache."""
    guard = make_guard(keyword_rule("bomb"), max_prompt_tokens=LIMIT, cache_size=256)
    messages = [{"role": "user", "content": "Find out why the nightly build fails."}]
    scored = []
    for step in range(14):
        messages.append({"role": "assistant", "content": f"Step {step}: checking the logs of night {step}. " * 8})
        messages.append({"role": "user", "content": f"Night {step}: linker warning in module {step}. " * 8})
        before = sum(guard.backend.calls)
        verdict = guard.classify(messages)
        assert verdict.safe
        scored.append((verdict.history_windows, sum(guard.backend.calls) - before))
    history_checks = [(windows, count) for windows, count in scored if windows]
    assert len(history_checks) >= 6 and max(windows for windows, _ in history_checks) >= 4
    # Each check scores its last message's prompt and at most the newest history window of each role.
    assert all(count <= 3 for _, count in history_checks), scored
    assert guard.window_cache.hits > 0
