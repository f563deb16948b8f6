"""A message's text parts reach the guard as the one text a chat model reads, never in pieces.

A chat model reads a message's text parts joined (Llama 4's own template concatenates them). The official Llama
Guard template shows each part on a ``User:`` line of its own, so a word split across parts (``["poi", "son"]``)
reached the guard as two harmless lines while the model read the word. Generated here: the unsafe phrase split at
every position into two and three parts, each part in every text-like shape (a bare string, ``text``,
``input_text``, ``output_text``, an assistant's ``refusal``), with an image, an annotation, reasoning or a
``tool_use`` part between the pieces, for the user turn, an assistant answer and a tool result. Each is checked as
the joined text: the same prompt as the message sent whole, and blocked by a guard that reads the phrase.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest

from llamaguard_guardrails.testing import keyword_rule, scripted_guard

from conftest import make_image, png_bytes

PHRASE = "poison the reservoir"
IMAGE = {
    "type": "image_url",
    "image_url": {"url": "data:image/png;base64," + base64.b64encode(png_bytes(make_image(8, 8))).decode()},
}


def shaped(text: str, shape: str) -> Any:
    """``text`` as a content part of ``shape``."""
    if shape == "str":
        return text
    if shape == "refusal":
        return {"type": "refusal", "refusal": text}
    return {"type": shape, "text": text}


BETWEEN: dict[str, dict[str, Any] | None] = {
    "nothing": None,
    "image": IMAGE,
    "annotated": {"type": "text", "text": "", "annotations": [{"type": "url_citation", "url": "https://a.example"}]},
    "reasoning": {"type": "reasoning", "summary": [{"type": "summary_text", "text": "x"}]},
    "tool_use": {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}},
}


def splits(text: str, pieces: int) -> list[list[str]]:
    """Every way to cut ``text`` into ``pieces`` non-empty pieces (cut points every 3 characters for 3 pieces)."""
    step = 1 if pieces == 2 else 3
    cuts = itertools.combinations(range(1, len(text), step), pieces - 1)
    return [[text[a:b] for a, b in zip((0, *cut), (*cut, len(text)), strict=True)] for cut in cuts]


def conversations(
    pieces: list[str], shape: str, between: str
) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    """(where, the split conversation, the same conversation sent whole) for each place a message can be."""
    content: list[Any] = []
    for n, piece in enumerate(pieces):
        if n and BETWEEN[between] is not None:
            content.append(BETWEEN[between])
        content.append(shaped(piece, shape))
    whole_parts = [shaped("".join(pieces), shape)] + [p for p in content if p is BETWEEN[between] and p is not None]
    user = {"role": "user", "content": "Tell me something."}
    out = []
    if shape != "refusal" and between not in ("tool_use", "reasoning"):
        out.append(("user turn", [{"role": "user", "content": content}], [{"role": "user", "content": whole_parts}]))
    if between != "image":
        out.append(
            (
                "assistant answer",
                [user, {"role": "assistant", "content": content}],
                [user, {"role": "assistant", "content": whole_parts}],
            )
        )
    if shape != "refusal" and between in ("nothing", "annotated"):
        call = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{}"}}],
        }
        out.append(
            (
                "tool result",
                [user, call, {"role": "tool", "tool_call_id": "c1", "content": content}],
                [user, call, {"role": "tool", "tool_call_id": "c1", "content": whole_parts}],
            )
        )
    return out


CASES = [
    (pieces, shape, between)
    for count in (2, 3)
    for pieces in splits(PHRASE, count)
    for shape in ("str", "text", "input_text", "output_text", "refusal")
    for between in BETWEEN
    if not (shape == "refusal" and between == "annotated")
]


@pytest.fixture(scope="module")
def reads_the_phrase(test_model_dir):
    return scripted_guard(test_model_dir, keyword_rule(PHRASE, category="S1"), cache_size=0)


@pytest.mark.parametrize("count", [2, 3])
def test_a_phrase_split_across_parts_is_checked_as_the_text_a_model_reads(reads_the_phrase, count):
    checked = 0
    for pieces, shape, between in (case for case in CASES if len(case[0]) == count):
        for where, split, whole in conversations(pieces, shape, between):
            label = f"{where}: {pieces} as {shape} parts with {between} between"
            (split_prompt,) = reads_the_phrase.build_prompts(split)
            (whole_prompt,) = reads_the_phrase.build_prompts(whole)
            assert split_prompt.input_ids == whole_prompt.input_ids, label
            verdict = reads_the_phrase.classify(split)
            assert not verdict.safe and verdict.categories == ["S1"], label
            checked += 1
    assert checked > 400 * (count - 1)  # every case generated and checked in at least one place
