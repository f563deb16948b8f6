"""Every channel is checked: system text, tool names, tool arguments, tool results, every image.

Numbers proven here: unsafe text in each of 26 channels (system and developer messages, tool-call
names and arguments, JSON-escaped and code arguments, the 2nd of 3 tool calls, legacy function
calls, tool results as text and as parts, a later text part, refusals, participant names, reasoning
keys and parts, flat / tool_use / custom tool calls, Llama Stack's user context) is part of the
checked turn and blocks, while the same channel with harmless text passes; JSON-escaped arguments give the same
prompt ids as their decoded form. Images: the prompt's pixel values hold every tile of every image
(3 images, 7 tiles) in order, one image-token run per image; on the real test model, changing only
the 1st, 2nd or 3rd of 3 images (or an image in an earlier message) changes the unsafe probability.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch

from llamaguard_guardrails import UnsafeContentError
from llamaguard_guardrails.core.prompt import IMAGE_END, IMAGE_START
from test_langchain_fakes import last_turn

from .helpers import tool_call
from conftest import make_image


def checked_turn_rule(text: str) -> str | None:
    """Unsafe iff the checked (last) turn mentions a bomb: proves the channel is part of what is judged."""
    return "S9" if "bomb" in last_turn(text).lower() else None


def escaped(word: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in word)


def calls(*pairs: tuple[str, str]) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"c{n}", "type": "function", "function": {"name": name, "arguments": args}}
            for n, (name, args) in enumerate(pairs)
        ],
    }


CHANNELS: dict[str, Callable[[str], list[dict]]] = {
    "system message": lambda w: [
        {"role": "system", "content": f"Always explain how to make a {w}."},
        {"role": "user", "content": "go on"},
    ],
    "developer message": lambda w: [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "developer", "content": f"Now describe a {w}."},
    ],
    "tool-call name": lambda w: [{"role": "user", "content": "go"}, tool_call(f"assemble_{w}", {})],
    "tool-call arguments": lambda w: [{"role": "user", "content": "go"}, tool_call("search", {"q": f"a {w} recipe"})],
    "JSON-escaped arguments": lambda w: [
        {"role": "user", "content": "go"},
        tool_call("search", '{"q": "a ' + escaped(w) + ' recipe"}'),
    ],
    "code-interpreter arguments": lambda w: [
        {"role": "user", "content": "go"},
        tool_call("python", '{"code": "make_' + escaped(w) + '()"}'),
    ],
    "2nd of 3 tool calls": lambda w: [
        {"role": "user", "content": "go"},
        calls(("search", '{"q": "bread"}'), ("search", json.dumps({"q": w})), ("search", '{"q": "flour"}')),
    ],
    "legacy function_call": lambda w: [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "function_call": {"name": "search", "arguments": json.dumps({"q": w})}},
    ],
    "tool result": lambda w: [
        {"role": "user", "content": "go"},
        tool_call("search", {"q": "x"}),
        {"role": "tool", "tool_call_id": "c1", "content": f"Step one: get a {w}."},
    ],
    "tool result parts": lambda w: [
        {"role": "user", "content": "go"},
        tool_call("search", {"q": "x"}),
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": [{"type": "text", "text": "ok"}, {"type": "text", "text": w}],
        },
    ],
    "later text part": lambda w: [
        {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "input_text", "text": f"a {w}?"}]}
    ],
    "assistant refusal part": lambda w: [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": f"no {w} for you"}]},
    ],
    # names, which the model reads: shown to the guard
    "user name": lambda w: [{"role": "user", "content": "hello", "name": f"{w}_maker"}],
    "system name": lambda w: [{"role": "system", "content": "be brief", "name": w}, {"role": "user", "content": "x"}],
    "assistant name": lambda w: [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "name": w}],
    "assistant refusal key, content None": lambda w: [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "refusal": f"no {w} for you"},
    ],
    "refusal key next to content": lambda w: [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "refusal": f"no {w} for you"},
    ],
    "reasoning_content": lambda w: [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "reasoning_content": f"they want a {w}"},
    ],
    "reasoning key": lambda w: [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "reasoning": f"they want a {w}"},
    ],
    "reasoning part": lambda w: [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "reasoning", "reasoning": w}, {"type": "text", "text": "ok"}]},
    ],
    "reasoning summary part": lambda w: [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": w}]}]},
    ],
    "thinking part": lambda w: [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": w, "signature": "c2ln"}]},
    ],
    "flat tool call input": lambda w: [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1", "name": "search", "input": {"q": w}}]},
    ],
    "tool_use part": lambda w: [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"q": w}},
            ],
        },
    ],
    "custom tool call": lambda w: [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "t1", "type": "custom", "custom": {"name": "grammar", "input": f"a {w}"}}],
        },
    ],
    "llama stack user context": lambda w: [{"role": "user", "content": "summarise", "context": f"how to build a {w}"}],
}


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_unsafe_text_in_every_channel_is_in_the_checked_turn(make_guard, channel):
    guard = make_guard(checked_turn_rule)
    unsafe = guard.classify(CHANNELS[channel]("bomb"))
    assert not unsafe.safe and unsafe.categories == ["S9"], guard.backend.seen[-1]
    assert unsafe.checked_message_index == len(CHANNELS[channel]("bomb")) - 1
    assert guard.classify(CHANNELS[channel]("bread")).safe


@pytest.mark.parametrize("channel", ["JSON-escaped arguments", "code-interpreter arguments"])
def test_json_escaped_arguments_are_shown_decoded(builder, make_guard, channel):
    guard = make_guard()
    raw = CHANNELS[channel]("bomb")
    decoded = json.loads(json.dumps(raw))  # a deep copy, then the arguments re-encoded without escapes
    function = decoded[-1]["tool_calls"][0]["function"]
    function["arguments"] = json.dumps(json.loads(function["arguments"]), ensure_ascii=False)
    assert "\\u" in raw[-1]["tool_calls"][0]["function"]["arguments"] and "\\u" not in function["arguments"]
    assert guard.build_prompts(CHANNELS[channel]("bomb"))[0].input_ids == guard.build_prompts(decoded)[0].input_ids


# -- images -------------------------------------------------------------------------------------------

IMAGES = [make_image(336, 336), make_image(500, 300, (0, 200, 0)), make_image(200, 640, (0, 0, 200))]


def three_images(images: list) -> list[dict]:
    first, second, third = ({"type": "image", "image": image} for image in images)
    return [
        {"role": "user", "content": [first, {"type": "text", "text": "Look at this."}]},
        {"role": "assistant", "content": "Nice picture."},
        {"role": "user", "content": [second, third, {"type": "text", "text": "And these two?"}]},
    ]


def image_runs(builder, prompt) -> list[int]:
    ids = prompt.input_ids
    starts = [i for i, t in enumerate(ids) if t == builder.ids[IMAGE_START]]
    ends = [i for i, t in enumerate(ids) if t == builder.ids[IMAGE_END]]
    return [e - s + 1 for s, e in zip(starts, ends, strict=True)]


def test_every_image_reaches_the_model_in_order(builder, make_guard):
    guard = make_guard()
    (prompt,) = guard.build_prompts(three_images(IMAGES))
    singles = [builder.pixel_values([image])[0] for image in IMAGES]
    assert [s.shape[0] for s in singles] == [1, 3, 3]
    assert prompt.pixel_values.shape[0] == 7  # every tile of every image
    assert torch.equal(prompt.pixel_values, torch.cat(singles))
    one_each = [
        guard.build_prompts([{"role": "user", "content": [{"type": "image", "image": i}, "x"]}])[0] for i in IMAGES
    ]
    assert image_runs(builder, prompt) == [image_runs(builder, p)[0] for p in one_each]
    assert len(prompt.images) == 3 and prompt.has_images


def image_probability(exact_guard, images: list) -> float:
    verdict = exact_guard.classify(three_images(images))
    assert verdict.error is None
    return verdict.unsafe_probability


def test_changing_any_one_of_three_images_changes_the_real_models_score(exact_guard):
    base = image_probability(exact_guard, IMAGES)
    assert image_probability(exact_guard, IMAGES) == base  # deterministic baseline
    other = make_image(336, 336, (250, 250, 0))
    for n in range(3):
        changed = list(IMAGES)
        changed[n] = other if n != 0 else make_image(336, 336, (10, 250, 250))
        assert image_probability(exact_guard, changed) != base, f"image {n + 1} of 3 did not reach the model"


# -- found by this suite ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["openai-dict", "AIMessage.additional_kwargs"])
def test_a_legacy_function_call_is_checked_through_the_langchain_adapter(make_guard, form):
    """The core checks ``function_call`` (see CHANNELS above); ``to_messages`` loses it before the core sees it."""
    from langchain_core.messages import AIMessage

    from llamaguard_guardrails.langchain import LlamaGuardRunnable
    from llamaguard_guardrails.langchain.convert import to_messages

    call = {"name": "python", "arguments": json.dumps({"code": "build_bomb()"})}
    if form == "openai-dict":
        value = [{"role": "user", "content": "go"}, {"role": "assistant", "content": "", "function_call": call}]
    else:
        value = [AIMessage("", additional_kwargs={"function_call": call})]
    # the failure this catches: [..., {'role': 'assistant', 'content': ''}]
    assert "build_bomb" in json.dumps(to_messages(value))
    with pytest.raises(UnsafeContentError):
        LlamaGuardRunnable(make_guard(checked_turn_rule), stage="output").invoke(value)
