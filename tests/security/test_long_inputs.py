"""No silent truncation: what the model sees always holds the last message and the
instruction, and whatever was left out is reported.

Numbers proven here: at 10k, 50k and 200k tokens of history, the prompt fits ``max_prompt_tokens``
(8192), holds the last message and the instruction, and ``verdict.omitted_messages`` names exactly
the (oldest) messages that are missing from it. A single message of 10k, 50k or 200k tokens is split
into overlapping windows that are all classified and together cover the whole text; markers at its
first, middle and last token each appear whole in some classified window, and an unsafe marker at
any of the three places blocks (at 200k: the last place, to keep the suite fast).

Every block of the last message is windowed: an unsafe first tool call of ~20k tokens
next to a short second one blocks; two long text parts are both windowed; markers at the start, middle
and end of its text, refusal, reasoning and each tool call all reach some window. Each window holds only
the last message (and all of its images), so it asks about that message alone, and
``omitted_messages`` never lists the checked message.
"""

from __future__ import annotations

import json
import random
import re
import time

import pytest

from llamaguard_guardrails.core.errors import InvalidPolicyError
from llamaguard_guardrails.core.prompt import EOT
from llamaguard_guardrails.testing import keyword_rule

from conftest import make_image

WORDS = "the quick brown fox jumps over a lazy dog while bread bakes in warm ovens every single morning".split()
INSTRUCTION = "Provide your safety assessment for ONLY THE LAST"
TAIL = f"{EOT}<|header_start|>assistant<|header_end|>"


def filler(tokens: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(tokens))  # about one token per word


def history(total_tokens: int, last: str) -> list[dict]:
    """~``total_tokens`` of alternating user/assistant messages, each starting with its marker ``msg-NNNN``."""
    count = max(25, total_tokens // 4000)
    size = total_tokens // count
    messages = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"msg-{n:04d} {filler(size, n)}"}
        for n in range(count)
    ]
    return [*messages, {"role": "user", "content": last}]


def assert_whole_prompt(guard, prompt) -> str:
    assert len(prompt) <= guard.max_prompt_tokens
    text = guard.prompts.decode(prompt.input_ids)
    assert INSTRUCTION in text and text.endswith(TAIL)
    return text


@pytest.mark.parametrize("total", [10_000, 50_000, 200_000])
def test_long_history_keeps_the_last_message_and_reports_exactly_what_was_left_out(make_guard, total):
    guard = make_guard(keyword_rule("bomb"), max_batch=64)  # every window of the check in one pass (last_prompts)
    messages = history(total, "final question: how do I build a bomb?")
    tokens = len(guard.prompts.encode_text(" ".join(m["content"] for m in messages)))
    assert tokens >= total * 0.9
    verdict = guard.classify(messages)
    assert not verdict.safe and verdict.windows == 1
    assert verdict.checked_message_index == len(messages) - 1
    prompt, *windows = guard.backend.last_prompts
    text = assert_whole_prompt(guard, prompt)
    assert "final question: how do I build a bomb?" in text
    shown = {int(n) for n in re.findall(r"msg-(\d{4})", text)}
    omitted = set(verdict.omitted_messages)
    assert omitted and omitted == set(range(len(messages) - 1)) - shown  # reported == missing
    assert verdict.omitted_messages == list(range(len(omitted)))  # the oldest ones
    assert guard.backend.seen[-1 - len(windows)] in text
    # ... and classified, in history windows: each omitted message's marker reaches one of them
    assert verdict.history_windows == len(windows) > 0 and all(w.history for w in windows)
    checked = " ".join(guard.backend.seen[-len(windows) :])
    assert {int(n) for n in re.findall(r"msg-(\d{4})", checked)} == omitted
    if total <= 50_000:  # the safe control (a 200k-token build takes seconds on a shared CPU)
        messages[-1]["content"] = "final question: how do I bake bread?"
        clean = guard.classify(messages)
        assert clean.safe and clean.omitted_messages == verdict.omitted_messages


@pytest.mark.parametrize("total", [10_000, 50_000, 200_000])
def test_a_huge_message_is_windowed_and_markers_anywhere_are_classified(make_guard, total):
    guard = make_guard(keyword_rule("bomb"), max_batch=64)  # every window of the check in one pass (last_prompts)
    body = filler(total, total)
    text = f"FIRSTMARK {body[: len(body) // 2]} MIDDLEMARK {body[len(body) // 2 :]} LASTMARK"
    assert len(guard.prompts.encode_text(text)) >= total
    verdict = guard.classify(text)
    prompts = guard.backend.last_prompts
    assert verdict.safe and verdict.windows == len(prompts) > 1
    seen = guard.backend.seen[-len(prompts) :]
    for marker in ("FIRSTMARK", "MIDDLEMARK", "LASTMARK"):
        assert any(marker in window for window in seen), f"{marker} was never classified"
    # The windows overlap and together cover the whole message, in order.
    covered = 0
    for prompt, window in zip(prompts, seen, strict=True):
        assert_whole_prompt(guard, prompt)
        piece = window.removeprefix("User: ").split("\\n\\n\n\n")[0]
        start = text.find(piece, max(0, covered - len(piece)))
        assert 0 <= start <= covered, "a gap between windows"
        covered = max(covered, start + len(piece))
    assert covered == len(text)
    for marker in ("FIRSTMARK", "MIDDLEMARK", "LASTMARK") if total <= 50_000 else ("LASTMARK",):
        unsafe = guard.classify(text.replace(marker, "bomb"))
        assert not unsafe.safe and unsafe.windows == len(prompts)


def test_a_huge_last_message_after_history_reports_the_history(make_guard):
    guard = make_guard(keyword_rule("bomb"))
    messages = history(10_000, "tail " + filler(20_000, 7) + " bomb")
    verdict = guard.classify(messages)
    assert not verdict.safe and verdict.windows > 2
    assert verdict.omitted_messages == list(range(len(messages) - 1))


# -- every block of the last message is windowed, and each window asks only about it ----------------------

SMALL = 2048  # a small prompt budget keeps these tests fast: ~20k tokens make about a dozen windows


def main_prompts(guard) -> list:
    """The prompts of the last check that judged its last message (not the history windows)."""
    return [prompt for prompt in guard.backend.last_prompts if not prompt.history]


def windows_of(guard, messages) -> tuple[object, list[str]]:
    """The verdict, and the conversation text of each window of the last message the model was shown."""
    verdict = guard.classify(messages)
    prompts = main_prompts(guard)
    assert verdict.windows == len(prompts) > 1
    for prompt in prompts:
        assert_whole_prompt(guard, prompt)
    return verdict, guard.backend.seen[-len(guard.backend.last_prompts) :][: len(prompts)]


def two_calls(first_args: dict, second_args: dict) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "search", "arguments": json.dumps(first_args)}},
            {"id": "c2", "type": "function", "function": {"name": "notify", "arguments": json.dumps(second_args)}},
        ],
    }


def test_the_first_of_two_tool_calls_is_windowed_too(make_guard):
    """The issue's case: the unsafe word in a 20k-token first call, a short second call."""
    guard = make_guard(keyword_rule("bomb"), max_prompt_tokens=SMALL)
    messages = [
        {"role": "user", "content": "USERMARK please look it up"},
        two_calls({"q": "how to build a bomb " + filler(20_000, 3)}, {"to": "me"}),
    ]
    verdict, seen = windows_of(guard, messages)
    assert not verdict.safe and verdict.categories == ["S9"]  # before: safe, the first call never shown
    assert verdict.checked_message_index == 1 and verdict.omitted_messages == [0]  # before: [0, 1]
    assert any("[tool call: notify]" in window for window in seen)
    assert not any("USERMARK" in window for window in seen)  # a window holds only the checked message
    for prompt in main_prompts(guard):
        assert prompt.checked_role == "Agent"
        assert "ONLY THE LAST Agent message" in guard.prompts.decode(prompt.input_ids)
    messages[1] = two_calls({"q": "how to bake bread " + filler(20_000, 3)}, {"to": "me"})
    assert guard.classify(messages).safe


def test_two_huge_text_parts_are_both_windowed(make_guard):
    guard = make_guard(keyword_rule("bomb"), max_prompt_tokens=SMALL)
    parts = [
        {"type": "text", "text": f"PARTONE {filler(8_000, 1)}"},
        {"type": "text", "text": f"{filler(8_000, 2)} bomb"},
    ]
    verdict, seen = windows_of(guard, [{"role": "user", "content": parts}])  # before: InvalidConversationError
    assert not verdict.safe and verdict.omitted_messages == []
    assert any("PARTONE" in window for window in seen)


MARKED_BLOCKS = ("text", "refusal", "reasoning", "first call", "second call")


def marked(tag: str, size: int, seed: int) -> str:
    body = filler(size, seed)
    return f"{tag}START {body[: len(body) // 2]} {tag}MIDDLE {body[len(body) // 2 :]} {tag}END"


def test_markers_anywhere_in_every_block_of_the_last_message_reach_some_window(make_guard):
    guard = make_guard(keyword_rule("bomb"), max_prompt_tokens=SMALL)
    tags = {name: name.replace(" ", "").upper() for name in MARKED_BLOCKS}
    message = {
        "role": "assistant",
        "content": marked(tags["text"], 3_000, 1),
        "refusal": marked(tags["refusal"], 3_000, 2),
        "reasoning_content": marked(tags["reasoning"], 3_000, 3),
        "tool_calls": [
            {
                "id": "a",
                "type": "function",
                "function": {"name": "f", "arguments": json.dumps({"q": marked(tags["first call"], 3_000, 4)})},
            },
            {
                "id": "b",
                "type": "function",
                "function": {"name": "g", "arguments": json.dumps({"q": marked(tags["second call"], 300, 5)})},
            },
        ],
    }
    verdict, seen = windows_of(guard, [{"role": "user", "content": "go"}, message])
    assert verdict.safe and verdict.omitted_messages == [0]
    for tag in tags.values():
        for where in ("START", "MIDDLE", "END"):
            assert any(tag + where in window for window in seen), f"{tag}{where} was never classified"


def test_every_window_of_the_last_message_carries_its_images(make_guard):
    guard = make_guard(keyword_rule("bomb"), max_prompt_tokens=SMALL)
    content = [
        {"type": "image", "image": make_image(64, 64)},
        {"type": "text", "text": filler(3_000, 1)},
        {"type": "text", "text": filler(3_000, 2)},
    ]
    messages = [
        {"role": "user", "content": [{"type": "image", "image": make_image(32, 32)}, {"type": "text", "text": "hi"}]}
    ]
    messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": content}]
    _, _ = windows_of(guard, messages)
    for prompt in main_prompts(guard):
        assert len(prompt.images) == 1 and prompt.images[0].size == (
            64,
            64,
        )  # the last message's image, not the first's
        assert prompt.pixel_values is not None and len(prompt.image_spans) == 1


def test_many_short_messages_cost_no_more_than_a_few_long_ones(make_guard):
    """The same ~5k tokens of history as 40 long or 400 short messages: prompt building should scale with tokens.

    Today each content span scans every token offset of the run (``_tokenize``), and ``build`` repeats
    that in its binary search: 1,000 messages of 10 tokens take ~8 s of GIL-holding Python on CPU (a
    cheap denial of service for a guard that accepts client histories).
    """
    guard = make_guard()

    def build_seconds(count: int) -> float:
        size = 5_000 // count
        messages = [{"role": "user" if n % 2 == 0 else "assistant", "content": filler(size, n)} for n in range(count)]
        started = time.perf_counter()
        guard.build_prompts(messages)
        return time.perf_counter() - started

    few, many = build_seconds(40), build_seconds(400)
    assert many <= 2 * few + 0.25, f"40 messages: {few:.2f} s, 400 messages: {many:.2f} s"


def test_a_budget_too_small_for_any_window_is_a_typed_error(make_guard):
    """The policy part of the prompt alone is longer than the budget: the policy (or budget) is what to change."""
    guard = make_guard(max_prompt_tokens=200)
    with pytest.raises(InvalidPolicyError, match="leaves no room for content"):
        guard.classify("hello " * 500)
