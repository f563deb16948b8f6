"""How cheap is one check? Ratios measured side by side in one run, on the random-weight test model.

    python benchmarks/bench_guard.py            # full run on the "bench"-size test model (~5 min, 2 cores)
    python benchmarks/bench_guard.py --quick    # a few repetitions on the tiny test model (CI: proves it runs)
    python benchmarks/bench_guard.py --compile-rows   # also the static (CUDA-graph) path and torch.compile, on CPU

Prints a table of ratios and writes the raw numbers to benchmarks/results/bench_guard.json.
Each comparison interleaves its two sides (A, B, A, B, ...) and reports medians, so machine noise hits
both sides alike. Targets: safe check >= 3x faster than generate-and-parse; prefix cache >= 2x on a
short check; 16 concurrent async checks >= 2x sequential throughput; RSS growth <= 50 MB over 2,000 checks.
And: a check without the prefix cache <= 1.0x one bare forward pass of the same ids.

A "bare forward" is the model alone (body, then the output head at the last position) with the same head
kernel as the check (``backends/forward.py``), so no ceiling row is slowed by a kernel the check avoids; one
row compares with transformers' own forward (``nn.Linear`` head) as well, and the head rows time both kernels.

The short-check rows reuse only the policy part of the prompt (``cache_conversations=False``), so a repeated
text is not cheaper than a new one. Two rows give the model-only ceilings on this machine: what any
implementation could reach with a perfect prefix cache (one bare pass over all ids vs one over the ids after
the policy prefix, its KV given). The agent row checks the next turn of a long history, its earlier turns
already checked (also after a screenshot: its image KV is reused), and the stream row a streamed answer checked
every 256 characters (as LangChain's windowed mode does), each with the conversation's KV reused vs the policy
part only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch
from run_meta import bench_model, run_meta

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.backends import forward
from llamaguard_guardrails.backends.transformers import TransformersBackend

RESULTS = Path(__file__).parent / "results"
SHORT = [{"role": "user", "content": "How do I bake sourdough bread at home?"}]
PASS = Policy(threshold=1.0)  # force the safe path: the cost of a safe verdict
HISTORY = [
    {"role": role, "content": f"{role.title()} turn {n}: " + text * 4}
    for n in range(4)
    for role, text in (
        ("user", "Could you help me plan the next stage of the garden irrigation project? "),
        ("assistant", "Here is a plan: measure the beds, choose drip lines, and set a timer for the mornings. "),
    )
]


def screenshot_history() -> list[dict]:
    """A user sends a 1024x768 screenshot, the agent answers, the user follows up in text."""
    from PIL import Image

    screen = Image.new("RGB", (1024, 768), (235, 235, 240))
    for x in range(0, 1024, 9):  # some structure, as a real screen has
        screen.putpixel((x, (x * 5) % 768), (20, 20, 20))
    return [
        {"role": "user", "content": [{"type": "image", "image": screen}, {"type": "text", "text": "Is this safe?"}]},
        {"role": "assistant", "content": "It shows a settings page with a network panel open."},
        {"role": "user", "content": "Which button resets the network settings?"},
    ]


def interleaved(a, b, repeats: int) -> tuple[float, float]:
    """Median seconds of a() and b(), run alternately after one warm-up each."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def bench(model_dir: Path, repeats: int, rss_checks: int, concurrency: int, compile_rows: bool = False) -> dict:
    guard = LlamaGuard.from_pretrained(model_dir, cache_size=0, micro_batching=False, cache_conversations=False)
    model, backend = guard.backend.model, guard.backend
    (prompt,) = guard.build_prompts(SHORT)
    ids = torch.tensor([prompt.input_ids])
    mask = torch.ones_like(ids)
    cut = prompt.prefix_length
    with torch.inference_mode():
        prefix_kv = model(input_ids=ids[:, :cut], use_cache=True, logits_to_keep=1, return_dict=False)[1]
    processor_text = guard.prompts.decode(prompt.input_ids)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    def ours() -> None:
        assert guard.classify(SHORT, policy=PASS).safe

    def generate_and_parse() -> None:
        # What Llama Stack and NeMo Guardrails do: render, tokenize, generate up to 10 tokens, parse text.
        inputs = tokenizer(processor_text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        _ = text.splitlines()[0] if text else ""

    def transformers_forward() -> None:
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False, return_dict=False)

    def bare_forward() -> None:
        """The model alone with the check's head kernel, logits at the last position."""
        with torch.inference_mode():
            hidden, _ = forward.hidden_states(model, ids, attention_mask=mask)
            forward.logits(model, hidden[:, -1:, :])

    def bare_forward_after_prefix() -> None:
        from llamaguard_guardrails.backends.kv_store import view

        with torch.inference_mode():
            hidden, _ = forward.hidden_states(
                model,
                ids[:, cut:],
                attention_mask=mask,
                position_ids=torch.arange(cut, ids.shape[1]).unsqueeze(0),
                past_key_values=view(prefix_kv, cut),
                use_cache=True,
            )
            forward.logits(model, hidden[:, -1:, :])

    def ours_no_prefix() -> None:
        backend.prefix_caching = False
        try:
            ours()
        finally:
            backend.prefix_caching = True

    results: dict[str, dict] = {}
    t_ours, t_generate = interleaved(ours, generate_and_parse, repeats)
    results["vs_generate"] = {
        "ours_s": t_ours,
        "generate_s": t_generate,
        "speedup": t_generate / t_ours,
        "target": ">= 3",
    }
    t_ours, t_bare = interleaved(ours, bare_forward, repeats)
    results["vs_bare_forward"] = {
        "ours_s": t_ours,
        "bare_forward_s": t_bare,
        "ratio": t_ours / t_bare,
        "target": "<= 1.15",
    }
    t_ours_np, t_bare = interleaved(ours_no_prefix, bare_forward, repeats)
    results["vs_bare_forward_no_prefix_cache"] = {
        "ours_s": t_ours_np,
        "bare_forward_s": t_bare,
        "ratio": t_ours_np / t_bare,
        "target": "<= 1.0",
    }
    t_ours_np, t_stock = interleaved(ours_no_prefix, transformers_forward, repeats)
    results["vs_transformers_forward_no_prefix_cache"] = {
        "ours_s": t_ours_np,
        "transformers_forward_s": t_stock,
        "ratio": t_ours_np / t_stock,
        "note": "transformers' own forward (nn.Linear head), logits at the last position",
    }
    t_prefix, t_noprefix = interleaved(ours, ours_no_prefix, repeats)
    results["prefix_cache"] = {
        "with_s": t_prefix,
        "without_s": t_noprefix,
        "speedup": t_noprefix / t_prefix,
        "target": ">= 2",
    }

    t_whole, t_rest = interleaved(bare_forward, bare_forward_after_prefix, repeats)
    results["ceiling_prefix_cache"] = {
        "bare_forward_s": t_whole,
        "bare_forward_after_cached_prefix_s": t_rest,
        "speedup": t_whole / t_rest,
        "note": "model only: the most any prefix cache can save on this model and machine",
    }
    results["ceiling_vs_generate"] = {
        "generate_s": t_generate,
        "bare_forward_after_cached_prefix_s": t_rest,
        "speedup": t_generate / t_rest,
        "note": "model only: generate-and-parse vs the cheapest possible score pass",
    }
    results["head_kernels"] = head_kernels(model, max(3, repeats // 2))
    results["agent_over_the_limit"] = agent_over_the_limit(guard, max(2, repeats // 8))
    if compile_rows:
        results["static_and_compiled"] = static_and_compiled(guard, max(3, repeats // 2))
    results["agent_next_turn"] = agent_next_turn(guard, max(3, repeats // 2))
    results["streamed_answer"] = streamed_answer(guard, max(2, repeats // 5))
    results["screenshot_next_turn"] = agent_next_turn(guard, max(3, repeats // 4), screenshot_history())

    batched = LlamaGuard(backend, guard.prompts, cache_size=0, micro_batching=True, max_batch=concurrency)
    texts = [[{"role": "user", "content": f"Question number {n}: how do plants grow?"}] for n in range(concurrency)]

    def sequential() -> None:
        for t in texts:
            guard.classify(t, policy=PASS)

    def concurrent() -> None:
        async def run() -> None:
            await asyncio.gather(*(batched.aclassify(t, policy=PASS) for t in texts))

        asyncio.run(run())

    t_seq, t_conc = interleaved(sequential, concurrent, max(2, repeats // 4))
    results["concurrency"] = {
        "checks": concurrency,
        "sequential_s": t_seq,
        "concurrent_s": t_conc,
        "throughput_gain": t_seq / t_conc,
        "batch_sizes": batched.batcher.batch_sizes[-8:],
        "target": ">= 2",
    }

    backend.cache_conversations = True  # the default: the KV store fills during the warm-up, then stays bounded
    for n in range(50):  # warm-up: allocator pools, lazy imports, the KV store
        guard.classify(f"warm up {n}", policy=PASS)
    gc.collect()
    before = rss_mb()
    for n in range(rss_checks):
        guard.classify(f"check number {n} with distinct text", policy=PASS)
    gc.collect()
    results["memory"] = {
        "checks": rss_checks,
        "rss_before_mb": before,
        "rss_growth_mb": rss_mb() - before,
        "target": "<= 50",
    }
    results["prompt_tokens"] = len(prompt.input_ids)
    results["prefix_tokens"] = prompt.prefix_length
    return results


def static_and_compiled(guard: LlamaGuard, repeats: int, mode: str = "default") -> dict:
    """The one-turn check on the static path (``compile="cuda_graphs"``: uncaptured on CPU) and with the static
    steps compiled by ``torch.compile(mode=mode)``, each interleaved with the eager check; warm-up times included."""
    real = guard.backend
    eager = LlamaGuard(real, guard.prompts, cache_size=0, micro_batching=False)
    out: dict = {"torch_compile_mode": mode}
    for name, option in (("static", "cuda_graphs"), ("compiled", mode)):
        backend = TransformersBackend(
            real.model, real.tokens, real.pad_token_id, guard.prompts.decode, cache_conversations=False, compile=option
        )
        other = LlamaGuard(backend, guard.prompts, cache_size=0, micro_batching=False)
        warmup_s = backend.warmup(other.build_prompts)
        t_other, t_eager = interleaved(
            lambda g=other: g.classify(SHORT, policy=PASS), lambda: eager.classify(SHORT, policy=PASS), repeats
        )
        out[name] = {"check_s": t_other, "eager_check_s": t_eager, "ratio": t_other / t_eager, "warmup_s": warmup_s}
    return out


def tool_agent(steps: int = 24) -> list[dict]:
    """A tool-calling agent: a task, then one tool call and its result per step (~100 tokens a step)."""
    messages = [{"role": "user", "content": "Find out why the nightly build of the payments service fails."}]
    for step in range(steps):
        query = f"build log of night {step}: errors and warnings of the payments service, newest first"
        call = {"id": f"c{step}", "type": "function", "function": {"name": "search_logs", "arguments": query}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        result = f"night {step}: " + "linker warning in module billing; tests passed; upload timed out. " * 4
        messages.append({"role": "tool", "tool_call_id": f"c{step}", "content": result})
    return messages


def agent_over_the_limit(guard: LlamaGuard, repeats: int, max_prompt_tokens: int = 1024) -> dict:
    """An agent checked after every message (library defaults: conversation KV reused) with ``max_prompt_tokens``
    low enough that it crosses the limit halfway: the median check after the crossing vs before it, with the
    trimming's hysteresis and, for comparison, with the fewest messages dropped at every check (the old rule)."""
    from llamaguard_guardrails.core import prompt as prompt_module
    from llamaguard_guardrails.core.verdict_cache import VerdictCache

    agent = LlamaGuard(guard.backend, guard.prompts, max_prompt_tokens=max_prompt_tokens, cache_size=0)
    # Whole verdicts are not cached (every check reaches the model), but the left-out history's windows are,
    # as with the defaults: after the crossing a check scores its last message and only new history windows.
    agent.window_cache = VerdictCache(4096)
    messages = tool_agent()
    turns = [messages[:end] for end in range(1, len(messages) + 1)]
    crossed = [bool(agent.build_prompts(turn)[0].omitted_messages) for turn in turns]
    backend = guard.backend
    settings = backend.prefix_caching, backend.cache_conversations
    backend.prefix_caching = backend.cache_conversations = True
    hysteresis = prompt_module.trim_limit
    times: dict[str, list[list[float]]] = {"hysteresis": [], "old_rule": []}
    try:
        for _ in range(repeats + 1):  # the first round warms up
            for name, rule in (("hysteresis", hysteresis), ("old_rule", lambda total, limit: limit)):
                prompt_module.trim_limit = rule
                backend.kv_store.clear()
                agent.window_cache.clear()
                run = []
                for turn in turns:
                    start = time.perf_counter()
                    agent.classify(turn, policy=PASS)
                    run.append(time.perf_counter() - start)
                times[name].append(run)
    finally:
        prompt_module.trim_limit = hysteresis
        backend.prefix_caching, backend.cache_conversations = settings
        agent.close()
    out: dict = {
        "checks": len(turns),
        "first_trimmed_check": crossed.index(True),
        "max_prompt_tokens": max_prompt_tokens,
    }
    for name, runs in times.items():
        per_check = [statistics.median(column) for column in zip(*runs[1:])]
        before = statistics.median(t for t, c in zip(per_check, crossed) if not c)
        after = statistics.median(t for t, c in zip(per_check, crossed) if c)
        out[name] = {"median_before_s": before, "median_after_s": after, "after_over_before": after / before}
    out["target"] = "<= 1.5 (hysteresis)"
    return out


def head_kernels(model, repeats: int, rows: tuple[int, ...] = (1, 2, 8, 32)) -> dict:
    """The output head's two exact kernels, interleaved, for each number of rows: ``F.linear`` (transformers'
    ``nn.Linear``) and ``weight @ hidden.T``; ``chosen`` is the one the score pass uses on this device and dtype."""
    weight = model.get_output_embeddings().weight
    chosen = "weight @ hidden.T" if forward.weight_first(weight) else "F.linear"
    out: dict = {"device": str(weight.device), "dtype": str(weight.dtype), "chosen": chosen}
    for n in rows:
        hidden = torch.randn(n, weight.shape[1], dtype=weight.dtype, device=weight.device)

        def linear(h=hidden) -> None:
            torch.nn.functional.linear(h, weight)
            sync(weight.device)

        def weight_first(h=hidden) -> None:
            weight @ h.T
            sync(weight.device)

        with torch.inference_mode():
            t_linear, t_first = interleaved(linear, weight_first, repeats)
        out[f"rows_{n}"] = {"F.linear_ms": t_linear * 1000, "weight_first_ms": t_first * 1000}
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reuse_vs_policy_only(guard: LlamaGuard, repeats: int, prime, timed) -> tuple[float, float]:
    """Median seconds of ``timed()`` with conversation KV reuse and with the policy part only, interleaved.
    Each run starts from an empty KV store primed (untimed) by ``prime()``; the first round warms up."""
    backend = guard.backend
    settings = backend.prefix_caching, backend.cache_conversations
    backend.prefix_caching = True
    with_reuse, policy_only = [], []
    try:
        for _ in range(repeats + 1):
            for reuse, out in ((True, with_reuse), (False, policy_only)):
                backend.kv_store.clear()
                backend.cache_conversations = reuse
                prime()
                start = time.perf_counter()
                timed()
                out.append(time.perf_counter() - start)
    finally:
        backend.prefix_caching, backend.cache_conversations = settings
    return statistics.median(with_reuse[1:]), statistics.median(policy_only[1:])


def agent_next_turn(guard: LlamaGuard, repeats: int, history: list[dict] = HISTORY) -> dict:
    """The next check of a long agent history whose earlier turns were checked (the same task line: the
    history and its earlier turns end with the same role). Verdicts are not asserted: on random GPU weights
    they are errors, and the pass is timed all the same."""
    t_reuse, t_policy = reuse_vs_policy_only(
        guard,
        repeats,
        lambda: guard.classify(history[:-2], policy=PASS),
        lambda: guard.classify(history, policy=PASS),
    )
    (prompt,) = guard.build_prompts(history)
    return {
        "prompt_tokens": len(prompt.input_ids),
        "with_conversation_reuse_s": t_reuse,
        "policy_prefix_only_s": t_policy,
        "speedup": t_policy / t_reuse,
    }


def streamed_answer(guard: LlamaGuard, repeats: int, window: int = 256) -> dict:
    """A streamed answer checked as LangChain's windowed mode does: the whole output so far, in context,
    every ``window`` characters, then once complete. Total guard time with conversation reuse vs without."""
    question = HISTORY[:1]
    answer = " ".join(m["content"] for m in HISTORY[1::2])
    cuts = list(range(window, len(answer), window)) + [len(answer)]

    def stream() -> None:
        for cut in cuts:
            guard.classify(question + [{"role": "assistant", "content": answer[:cut]}], policy=PASS)

    t_reuse, t_policy = reuse_vs_policy_only(guard, repeats, lambda: None, stream)
    return {
        "answer_chars": len(answer),
        "checks": len(cuts),
        "with_conversation_reuse_s": t_reuse,
        "policy_prefix_only_s": t_policy,
        "speedup": t_policy / t_reuse,
    }


def table(results: dict) -> str:
    rows = [
        ("safe check vs generate(10)+parse", f"{results['vs_generate']['speedup']:.2f}x faster", ">= 3x"),
        ("safe check vs one bare forward", f"{results['vs_bare_forward']['ratio']:.2f}x the time", "<= 1.15x"),
        ("  (prefix cache off)", f"{results['vs_bare_forward_no_prefix_cache']['ratio']:.2f}x the time", "<= 1.0x"),
        (
            "  (prefix cache off) vs transformers' own forward",
            f"{results['vs_transformers_forward_no_prefix_cache']['ratio']:.2f}x the time",
            "-",
        ),
        ("prefix cache on vs off", f"{results['prefix_cache']['speedup']:.2f}x faster", ">= 2x"),
        (
            "  ceiling: bare pass, all ids vs after the prefix",
            f"{results['ceiling_prefix_cache']['speedup']:.2f}x",
            "-",
        ),
        ("  ceiling: generate(10) vs bare pass after prefix", f"{results['ceiling_vs_generate']['speedup']:.2f}x", "-"),
        *head_rows(results["head_kernels"]),
        (
            f"agent over max_prompt_tokens={results['agent_over_the_limit']['max_prompt_tokens']}: "
            "median check after the crossing / before",
            f"{results['agent_over_the_limit']['hysteresis']['after_over_before']:.2f}x",
            "<= 1.5x",
        ),
        (
            "  (the old rule: one more message dropped at every check)",
            f"{results['agent_over_the_limit']['old_rule']['after_over_before']:.2f}x",
            "-",
        ),
        (
            f"next agent turn ({results['agent_next_turn']['prompt_tokens']} tokens), history KV reused",
            f"{results['agent_next_turn']['speedup']:.2f}x faster",
            "-",
        ),
        (
            f"next turn after a 1024x768 screenshot ({results['screenshot_next_turn']['prompt_tokens']} tokens)",
            f"{results['screenshot_next_turn']['speedup']:.2f}x faster",
            "-",
        ),
        (
            f"streamed answer, {results['streamed_answer']['checks']} window checks, history KV reused",
            f"{results['streamed_answer']['speedup']:.2f}x faster",
            "-",
        ),
        (
            f"{results['concurrency']['checks']} concurrent async vs sequential",
            f"{results['concurrency']['throughput_gain']:.2f}x throughput",
            ">= 2x",
        ),
        (
            f"RSS growth over {results['memory']['checks']} checks",
            f"{results['memory']['rss_growth_mb']:.1f} MB",
            "<= 50 MB",
        ),
    ]
    if "static_and_compiled" in results:
        compiled = results["static_and_compiled"]
        rows += [
            (
                "static path (compile='cuda_graphs', uncaptured on CPU) vs eager",
                f"{compiled['static']['ratio']:.2f}x the time",
                "-",
            ),
            (
                f"torch.compile of the static path vs eager (warm-up {compiled['compiled']['warmup_s']:.0f} s)",
                f"{compiled['compiled']['ratio']:.2f}x the time",
                "-",
            ),
        ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure':<{width}}  {'result':<20}  target", "-" * (width + 32)]
    lines += [f"{name:<{width}}  {value:<20}  {target}" for name, value, target in rows]
    return "\n".join(lines)


def head_rows(kernels: dict) -> list[tuple[str, str, str]]:
    """One table row per row count: F.linear time / weight-first time (> 1: weight-first is faster)."""
    rows = []
    for key, value in kernels.items():
        if key.startswith("rows_"):
            ratio = value["F.linear_ms"] / value["weight_first_ms"]
            rows.append((f"  head, {key[5:]} row(s): F.linear / weight @ hidden.T", f"{ratio:.2f}x", "-"))
    rows[0] = (*rows[0][:2], f"score pass uses {kernels['chosen']}")
    return rows


def event_loop_lag(model_dir: Path, checks: int = 8, step_s: float = 0.5) -> dict:
    """p99 lag of a 10 ms asyncio heartbeat while ``checks`` async checks run (target <= 50 ms): with a blocking
    ``step_s`` model step (scripted), and on the model itself. A timing, so measured here, not asserted in tests."""
    from llamaguard_guardrails.testing import ScriptedBackend, keyword_rule

    real = LlamaGuard.from_pretrained(model_dir, cache_size=0)
    blocking = LlamaGuard(
        ScriptedBackend(real.prompts, keyword_rule("bomb"), delay_s=step_s), real.prompts, cache_size=0
    )

    async def p99_ms(guard: LlamaGuard) -> float:
        loop, lags, done = asyncio.get_running_loop(), [], asyncio.Event()

        async def beat() -> None:
            while not done.is_set():
                before = loop.time()
                await asyncio.sleep(0.01)
                lags.append(loop.time() - before - 0.01)

        await guard.aclassify("warm-up")
        task = asyncio.create_task(beat())
        await asyncio.gather(*(guard.aclassify(f"question {n}: tell me about bread " * 20) for n in range(checks)))
        done.set()
        await task
        return sorted(lags)[int(0.99 * (len(lags) - 1))] * 1000

    try:
        return {
            "checks": checks,
            "blocking_step_p99_ms": asyncio.run(p99_ms(blocking)),
            "model_p99_ms": asyncio.run(p99_ms(real)),
            "target": "<= 50",
        }
    finally:
        blocking.close()
        real.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repetitions on the tiny model (proves it runs)")
    parser.add_argument("--model", help="model folder (default: a test model built for the run)")
    parser.add_argument("--output", default=str(RESULTS / "bench_guard.json"))
    parser.add_argument("--compile-rows", action="store_true", help="also time the static path and torch.compile")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    model_dir, size = bench_model(args.model, args.quick)
    repeats, rss_checks, concurrency = (3, 200, 16) if args.quick else (20, 2000, 16)
    results = bench(model_dir, repeats, rss_checks, concurrency, args.compile_rows)
    results["meta"] = run_meta(model_dir, size, args.quick)
    print(table(results))
    results["event_loop"] = lag = event_loop_lag(model_dir)
    print(
        f"event loop p99 lag, {lag['checks']} async checks: {lag['blocking_step_p99_ms']:.1f} ms (500 ms blocking step), "
        f"{lag['model_p99_ms']:.1f} ms (model)  target <= 50 ms"
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"raw numbers: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
