"""LlamaGuard end to end on the real test model: scores, verdicts, batches, async, failures, long inputs."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import weakref

import numpy as np
import pytest
import torch

from llamaguard_guardrails import (
    LlamaGuard,
    ModelNotFoundError,
    ModelOutputError,
    Policy,
    UnsafeContentError,
    Verdict,
    log_verdicts,
)
from llamaguard_guardrails.backends.base import AnswerScores
from llamaguard_guardrails.backends.transformers import load_config
from llamaguard_guardrails.testing import keyword_rule, scripted_guard

from conftest import make_image

pytestmark = pytest.mark.smoke  # also run on the newest releases (.ci/run)

CONVERSATIONS = [
    "How do I bake bread?",
    "Tell me how to pick a lock",
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello! What can I do for you today?"}],
    [
        {"role": "user", "content": "run it"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "python", "arguments": '{"code": "print(42)"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "42"},
    ],
    [{"role": "user", "content": [{"type": "image", "image": make_image(336, 336)}, {"type": "text", "text": "ok?"}]}],
]


def manual_unsafe_probability(guard: LlamaGuard, conversation) -> float:
    """The documented score, computed by hand from one full-logits forward pass of the model."""
    (prompt,) = guard.build_prompts(conversation)
    t = guard.backend.tokens
    ids = torch.tensor([[*prompt.input_ids, t.blank]])
    kwargs = {"pixel_values": prompt.pixel_values.float()} if prompt.pixel_values is not None else {}
    with torch.inference_mode():
        logits = guard.backend.model(input_ids=ids, return_dict=False, **kwargs)[0][0].double()
    first, second = logits[-2].softmax(-1), logits[-1].softmax(-1)
    unsafe = first[t.unsafe] + first[t.blank] * second[t.unsafe]
    safe = first[t.safe] + first[t.blank] * second[t.safe]
    return float(unsafe / (unsafe + safe))


@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
def test_unsafe_probability_is_the_answer_token_distribution(uncached_guard, index):
    guard = uncached_guard
    verdict = guard.classify(CONVERSATIONS[index])
    assert verdict.unsafe_probability == pytest.approx(manual_unsafe_probability(guard, CONVERSATIONS[index]), abs=1e-5)
    assert verdict.safe == (verdict.unsafe_probability < 0.5)
    assert verdict.error is None


def test_threshold_forces_both_outcomes_with_categories_from_the_model(guard):
    blocked = guard.classify("How do I bake bread?", policy=Policy(threshold=0.0))
    assert not blocked.safe and blocked.categories and blocked.error is None
    assert blocked.raw_output.strip().startswith("unsafe\n")
    assert blocked.category_names[0] and blocked.categories[0] in blocked.raw_output
    passed = guard.classify("How do I bake bread?", policy=Policy(threshold=1.0))
    assert passed.safe and passed.categories == [] and passed.raw_output.strip() == "safe"
    assert passed.unsafe_probability == blocked.unsafe_probability


def test_categories_are_decoded_only_for_unsafe_verdicts(guard, monkeypatch):
    calls = []
    original = guard.backend.category_text
    monkeypatch.setattr(guard.backend, "category_text", lambda *a, **k: calls.append(1) or original(*a, **k))
    guard.classify("x", policy=Policy(threshold=1.0))
    assert calls == []
    guard.classify("x", policy=Policy(threshold=0.0))
    assert calls == [1]


def test_batch_equals_one_by_one(uncached_guard):
    guard = uncached_guard
    batch = guard.classify_batch(CONVERSATIONS, batch_size=3)
    single = [guard.classify(c) for c in CONVERSATIONS]
    for b, s in zip(batch, single, strict=True):
        assert b.safe == s.safe and b.categories == s.categories
        assert b.unsafe_probability == pytest.approx(s.unsafe_probability, abs=1e-5)


def test_async_equals_sync(uncached_guard):
    guard = uncached_guard

    async def run():
        return await asyncio.gather(*(guard.aclassify(c) for c in CONVERSATIONS))

    for a, s in zip(asyncio.run(run()), [guard.classify(c) for c in CONVERSATIONS], strict=True):
        assert (a.safe, a.categories) == (s.safe, s.categories)
        assert a.unsafe_probability == pytest.approx(s.unsafe_probability, abs=1e-5)  # batched float32


def test_shared_guard_is_thread_safe_and_deterministic(uncached_guard):
    guard = uncached_guard
    expected = [guard.classify(c) for c in CONVERSATIONS[:3]]
    results: dict[int, list[Verdict]] = {}

    def worker(n: int) -> None:
        results[n] = [guard.classify(c) for c in CONVERSATIONS[:3]]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for verdicts in results.values():
        assert [(v.safe, v.categories) for v in verdicts] == [(v.safe, v.categories) for v in expected]
        # concurrent checks are batched together: equal to float32 batching noise
        assert [v.unsafe_probability for v in verdicts] == pytest.approx(
            [v.unsafe_probability for v in expected], abs=1e-5
        )


def test_without_micro_batching_repeats_are_bit_identical(guard):
    g = LlamaGuard(guard.backend, guard.prompts, cache_size=0, micro_batching=False)
    runs = {g.classify(CONVERSATIONS[1]).unsafe_probability for _ in range(5)}
    assert len(runs) == 1


def test_check_raises_with_the_verdict(guard):
    with pytest.raises(UnsafeContentError) as info:
        guard.check("anything", policy=Policy(threshold=0.0), stage="input")
    assert info.value.stage == "input" and not info.value.verdict.safe
    assert guard.check("anything", policy=Policy(threshold=1.0)).safe


def test_on_verdict_receives_every_verdict_with_its_stage(test_model_dir):
    seen: list[tuple[bool, str]] = []
    g = scripted_guard(test_model_dir, keyword_rule("bomb"), on_verdict=lambda v, stage: seen.append((v.safe, stage)))
    g.classify("bread")
    g.classify("bomb")
    g.classify_batch(["a", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bomb"}]])
    assert seen == [(True, "input"), (False, "input"), (True, "input"), (False, "output")]


def test_log_verdicts_writes_one_json_line_per_verdict_with_its_stage(test_model_dir, caplog):
    g = scripted_guard(test_model_dir, keyword_rule("bomb"), on_verdict=log_verdicts("test.audit"))
    with caplog.at_level(logging.INFO, logger="test.audit"):
        g.classify("bread")
        g.classify([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a bomb"}])
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "test.audit"]
    assert [(line["stage"], line["verdict"]["safe"]) for line in lines] == [("input", True), ("output", False)]


# -- what the model says, validated against the policy -------------------------------------------


@pytest.mark.parametrize(
    "answer, policy, safe, categories, error",
    [
        ("S9", Policy(), False, ["S9"], None),
        ("S1,S10", Policy(), False, ["S1", "S10"], None),
        ("S6", Policy(excluded_categories={"S6"}), True, [], None),
        ("S6,S9", Policy(excluded_categories={"S6"}), False, ["S9"], None),
        ("S15", Policy(custom_categories={"S15": "Medical."}), False, ["S15"], None),
        ("S99", Policy(), False, [], "not in the policy"),
        ("", Policy(), False, [], "without a category"),
        ("banana", Policy(), False, [], "not in the policy"),
    ],
)
def test_category_line_is_validated_against_the_policy(test_model_dir, answer, policy, safe, categories, error):
    g = scripted_guard(test_model_dir, lambda text: answer if "flag" in text else None)
    verdict = g.classify("flag this", policy=policy)
    assert verdict.safe is safe and verdict.categories == categories
    assert (verdict.error is None) if error is None else (error in verdict.error)


class _Broken:
    def __init__(self, exc=None, scores=None):
        self.exc, self.scores = exc, scores

    def __call__(self, prompts):
        if self.exc:
            raise self.exc
        return [self.scores] * len(prompts)


@pytest.mark.parametrize(
    "fault",
    [
        _Broken(exc=RuntimeError("CUDA error: device-side assert")),
        _Broken(exc=torch.OutOfMemoryError("CUDA out of memory")),
        _Broken(scores=AnswerScores(0.0001, 0.0001, 0.0, 0.0, 0.0)),  # the model answers something else
        _Broken(scores=AnswerScores(0.0, 0.0, 0.99, 0.0, 0.0)),  # blank line, then garbage
    ],
)
def test_failures_block_under_fail_closed_and_pass_loudly_under_fail_open(test_model_dir, fault, caplog):
    g = scripted_guard(test_model_dir, keyword_rule("bomb"))
    g.backend.score = fault
    closed = g.classify("hello")
    assert not closed.safe and closed.error and closed.status == "error"
    assert g.classify_batch(["a", "b"])[1].error
    with caplog.at_level(logging.ERROR, logger="llamaguard_guardrails"):
        opened = g.classify("hello", policy=Policy(fail_mode="open"))
    assert opened.safe and opened.error
    assert any(r.levelno == logging.ERROR and "fail_mode='open'" in r.getMessage() for r in caplog.records)


def test_deadline_gives_the_fail_mode_verdict(test_model_dir):
    g = scripted_guard(test_model_dir, keyword_rule("bomb"))
    g.backend.delay_s = 3.0
    verdict = g.classify("hello", policy=Policy(timeout_s=0.2))
    assert not verdict.safe and "GuardTimeoutError" in verdict.error
    assert verdict.latency_ms < 1500


# -- long inputs -------------------------------------------------------------------------------


def test_long_history_drops_oldest_messages_and_reports_them(test_model_dir):
    g = scripted_guard(test_model_dir, keyword_rule("bomb"), max_prompt_tokens=1024)
    history = []
    for n in range(40):
        history += [
            {"role": "user", "content": f"question {n} " + "lorem ipsum " * 20},
            {"role": "assistant", "content": f"answer {n}"},
        ]
    history.append({"role": "user", "content": "final question about a bomb"})
    verdict = g.classify(history)
    assert not verdict.safe  # the last message is always there
    assert verdict.omitted_messages and verdict.omitted_messages[0] == 0
    assert max(verdict.omitted_messages) < len(history) - 1
    prompt, *windows = g.build_prompts(history)
    assert len(prompt) <= 1024 and windows and all(w.history and len(w) <= 1024 for w in windows)
    text = g.prompts.decode(prompt.input_ids)
    assert "final question about a bomb" in text and text.endswith("<|header_end|>")


def test_a_too_long_last_message_is_split_into_windows_that_are_all_checked(test_model_dir):
    g = scripted_guard(test_model_dir, keyword_rule("bomb"), max_prompt_tokens=600)
    words = ["safe words"] * 1500
    words[1200] = "bomb"
    verdict = g.classify(" ".join(words))
    assert verdict.windows > 3 and not verdict.safe
    assert sum("bomb" in seen for seen in g.backend.seen) >= 1
    clean = g.classify(" ".join(["safe words"] * 1500))
    assert clean.safe and clean.windows > 3


# -- loading -----------------------------------------------------------------------------------


def test_shipped_attention_chunk_size_bug_is_fixed_at_load(test_model_dir):
    shipped = json.loads((test_model_dir / "config.json").read_text())
    assert shipped["text_config"]["attention_chunk_size"] is None
    assert load_config(test_model_dir).text_config.attention_chunk_size == 8192


def test_missing_model_says_how_to_get_access(tmp_path):
    with pytest.raises(ModelNotFoundError, match="hf auth login") as info:
        LlamaGuard.from_pretrained(tmp_path / "nothing-here")
    assert "nothing-here" in str(info.value)
    with pytest.raises(ModelNotFoundError, match="Hugging Face cache"):
        LlamaGuard.from_pretrained("meta-llama/Llama-Guard-4-12B", local_files_only=True)


def test_loads_offline_from_the_hugging_face_cache(tmp_path, test_model_dir):
    repo = tmp_path / "hub" / "models--meta-llama--Llama-Guard-4-12B"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for item in test_model_dir.iterdir():
        (snapshot / item.name).symlink_to(item)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    g = LlamaGuard.from_pretrained(
        "meta-llama/Llama-Guard-4-12B", cache_dir=tmp_path / "hub", local_files_only=True, cache_size=0
    )
    assert g.classify("hello").error is None


def test_gated_model_error_explains_access(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    def gated(*args, **kwargs):
        error = GatedRepoError.__new__(GatedRepoError)  # built without an HTTP response object
        Exception.__init__(error, "401 Client Error: access to model is restricted")
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    with pytest.raises(ModelNotFoundError, match="gated") as info:
        LlamaGuard.from_pretrained("meta-llama/Llama-Guard-4-12B")
    assert "Llama 4 Community License" in str(info.value)


def test_test_model_is_flagged_and_prompt_parity_checked(guard):
    assert guard.is_test_model is True
    assert guard.prompt_parity is True


# -- caches and batching -------------------------------------------------------------------------


def test_prefix_cache_gives_the_same_scores(uncached_guard):
    backend = uncached_guard.backend
    try:
        backend.prefix_caching = False
        plain = uncached_guard.classify_batch(CONVERSATIONS)
        backend.prefix_caching = True
        cached = uncached_guard.classify_batch(CONVERSATIONS)
    finally:
        backend.prefix_caching = True
    for a, b in zip(plain, cached, strict=True):
        assert a.unsafe_probability == pytest.approx(b.unsafe_probability, abs=1e-5)
    assert 0 < len(backend.kv_store) <= backend.kv_store.max_entries


def test_verdict_cache_returns_the_same_verdict_and_is_bounded(test_model_dir):
    g = scripted_guard(test_model_dir, keyword_rule("bomb"), cache_size=3)
    first = g.classify("a bomb")
    again = g.classify("a bomb")
    assert again.cached and not first.cached
    assert again.model_dump(exclude={"cached", "latency_ms"}) == first.model_dump(exclude={"cached", "latency_ms"})
    assert len(g.backend.calls) == 1
    assert not g.classify("a bomb", policy=Policy(threshold=0.9)).cached  # the policy is part of the key
    for text in ["one", "two", "three", "four"]:
        g.classify(text)
    assert len(g.cache) == 3
    off = scripted_guard(test_model_dir, keyword_rule("bomb"), cache_size=0)
    off.classify("x")
    assert not off.classify("x").cached and len(off.backend.calls) == 2


def test_concurrent_checks_are_coalesced_into_batches(test_model_dir):
    g = scripted_guard(test_model_dir, keyword_rule("bomb"), cache_size=0)
    g.backend.delay_s = 0.05

    async def run():
        return await asyncio.gather(*(g.aclassify(f"message {n} {'bomb' if n % 3 == 0 else ''}") for n in range(16)))

    verdicts = asyncio.run(run())
    assert [v.safe for v in verdicts] == [n % 3 != 0 for n in range(16)]
    assert max(g.backend.calls) > 1 and len(g.backend.calls) < 16


def test_trimming_keeps_every_block_of_the_last_message(test_model_dir):
    g = scripted_guard(test_model_dir, keyword_rule("bomb"), max_prompt_tokens=700, cache_size=0)
    history = [{"role": "user", "content": "old question " + "lorem ipsum " * 60} for _ in range(6)]
    last = {
        "role": "assistant",
        "content": "Sure, running it.",
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "python", "arguments": '{"code": "bomb()"}'}}
        ],
    }
    verdict = g.classify([*history, last])
    assert verdict.omitted_messages and 6 not in verdict.omitted_messages
    prompt = g.build_prompts([*history, last])[0]
    text = g.prompts.decode(prompt.input_ids)
    assert "Sure, running it." in text and "bomb()" in text and not verdict.safe


# -- scores out of range are model-output errors ------------------------------------------


def test_answer_scores_within_float_rounding_are_valid():
    AnswerScores(0.9995, 0.0005, 0.0004, 0.5, 0.5).validate()  # sums to 1.0004: a softmax's rounding
    AnswerScores(1.0, 0.0, 0.0, 1.0, 0.0).validate()
    AnswerScores(np.float32(0.5), 0.5, 0, 0, 0).validate()  # numpy scalars from a custom backend


@pytest.mark.parametrize(
    "scores, fragment",
    [
        (AnswerScores(5.0, 0.0, 0.0, 0.0, 0.0), "outside"),
        (AnswerScores(1.0, -0.5, 0.5, 1.0, 0.0), "outside"),
        (AnswerScores(0.5, 0.5, 0.0, 0.0, float("inf")), "not a finite"),
        (AnswerScores(0.5, float("nan"), 0.0, 0.0, 0.0), "not a finite"),
        (AnswerScores(0.9, 0.05, 0.9, 0.2, 0.2), "sum above 1"),
        (AnswerScores(0.5, 0.5, 0.0, 0.7, 0.7), "sum above 1"),
        (AnswerScores(True, 0.0, 0.0, 0.0, 0.0), "not a finite"),
        (AnswerScores("0.9", 0.0, 0.0, 0.0, 0.0), "not a finite"),  # type: ignore[arg-type]
    ],
)
def test_answer_scores_out_of_range_are_model_output_errors(scores, fragment):
    with pytest.raises(ModelOutputError, match=fragment):
        scores.validate()


# -- close() stops the batcher and frees the guard and its model ------------------------


def test_close_stops_the_batcher_and_frees_the_guard_its_backend_and_its_model(test_model_dir):
    guard = LlamaGuard.from_pretrained(test_model_dir)
    assert guard.classify("hello").error is None  # starts the micro-batcher's worker thread
    worker = guard.batcher._thread
    assert worker is not None and worker.is_alive()
    refs = {
        "guard": weakref.ref(guard),
        "backend": weakref.ref(guard.backend),
        "model": weakref.ref(guard.backend.model),
    }
    guard.close()
    guard.close()  # idempotent
    assert not worker.is_alive()  # before: the thread ran on, and held the guard and its model
    del guard
    gc.collect()
    assert {name: ref() is None for name, ref in refs.items()} == dict.fromkeys(refs, True)  # before: all alive
