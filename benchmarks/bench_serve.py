"""What does serving cost, and what does it buy? Ratios measured side by side in one run (random-weight test model).

    python benchmarks/bench_serve.py           # the "bench"-size test model (~3 min on 2 cores)
    python benchmarks/bench_serve.py --quick   # the tiny test model, few repetitions (proves it runs)

Three rows (their targets in brackets):
- served vs in-process, one client: a check through ``POST /v1/moderations`` on 127.0.0.1 (keep-alive
  connection) over the same check in-process (``guard.classify``) [<= 1.15x];
- 16 concurrent clients vs one: throughput of the server (its micro-batcher coalesces them) [>= 2x];
- OGX's growing answer: 2,000 characters re-sent every 200 (ten checks) over one check of the full text, with
  the server's prefix KV reuse [<= 2x], and without it (every check pays for the whole text).

Under two of them, the bound this machine and the prompt set, measured in the same run: the **ceiling** of
coalescing (16 checks in one in-process forward pass vs one at a time: no HTTP, no client threads; where one check
already keeps every core busy, a batch gains only what a larger matrix product gains), and the **floor** of the
growing answer (the tokens its ten checks run over those of one check: each re-check runs its new text *and* the
~60 instruction tokens that follow the conversation in Llama Guard 4's prompt, which no cache can hold).

Every check takes the safe path (threshold 1.0: no category line decoded), as most checks do; the verdict cache is off (every text is new), and each comparison interleaves its sides (A, B, A, B ...) and
reports medians. Writes the numbers to benchmarks/results/bench_serve.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import httpx
import torch
from run_meta import bench_model, run_meta

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.backends.transformers import TransformersBackend
from llamaguard_guardrails.serve.app import create_app
from llamaguard_guardrails.serve.background import BackgroundServer
from llamaguard_guardrails.serve.settings import ServeSettings

RESULTS = Path(__file__).parent / "results"
PASS = Policy(threshold=1.0)  # the safe path (most checks): no category line is decoded
WORDS = "rivers carve deep valleys through soft rock while glaciers grind the harder stone beneath them".split()


def text(n: int, length: int = 120) -> str:
    """A distinct text per ``n`` (the verdict cache never hits)."""
    words = [WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(64)]
    return f"Question {n}: " + " ".join(words)[:length]


def answer(seed: int, length: int = 2000) -> str:
    return " ".join(WORDS[(seed + i * 5) % len(WORDS)] for i in range(length))[:length]


def guard_on(base: LlamaGuard, *, prefix_caching: bool = True) -> LlamaGuard:
    real = base.backend
    backend = TransformersBackend(
        real.model, real.tokens, real.pad_token_id, base.prompts.decode, prefix_caching=prefix_caching
    )
    return LlamaGuard(backend, base.prompts, cache_size=0, policy=PASS)


def ok(response: httpx.Response) -> httpx.Response:
    """A finished check: a verdict, or the random model's undecided answer the server fails closed on (500)."""
    undecided = response.status_code == 500 and response.json()["error"].get("code") == "guard_error"
    if response.status_code != 200 and not undecided:
        raise RuntimeError(f"the server answered {response.status_code}: {response.text[:500]}")
    return response


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def overhead(local: LlamaGuard, http: httpx.Client, repeats: int, n: int) -> dict:
    counter = iter(range(10**9))
    served_t, local_t = [], []
    for _ in range(repeats):
        batch = [text(next(counter)) for _ in range(n)]
        started = time.perf_counter()
        for t in batch:
            local.classify(t)
        local_t.append((time.perf_counter() - started) / n)
        batch = [text(next(counter)) for _ in range(n)]
        started = time.perf_counter()
        for t in batch:
            ok(http.post("/v1/moderations", json={"input": t}))
        served_t.append((time.perf_counter() - started) / n)
    local_ms, served_ms = statistics.median(local_t) * 1000, statistics.median(served_t) * 1000
    return {"in_process_ms": local_ms, "served_ms": served_ms, "ratio": served_ms / local_ms}


def throughput(url: str, repeats: int, n: int, clients: int) -> dict:
    counter = iter(range(10**6, 10**9))

    def run(concurrency: int) -> float:
        texts = [text(next(counter)) for _ in range(n)]
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            http = [httpx.Client(base_url=url, timeout=300) for _ in range(concurrency)]
            started = time.perf_counter()
            post = lambda i: ok(http[i % concurrency].post("/v1/moderations", json={"input": texts[i]}))  # noqa: E731
            list(pool.map(post, range(n)))
            seconds = time.perf_counter() - started
            for h in http:
                h.close()
        return n / seconds

    one, many = [], []
    for _ in range(repeats):
        one.append(run(1))
        many.append(run(clients))
    return {
        "one_client_per_s": statistics.median(one),
        f"{clients}_clients_per_s": statistics.median(many),
        "ratio": statistics.median(many) / statistics.median(one),
        "checks": n,
    }


def batching_ceiling(local: LlamaGuard, repeats: int, clients: int) -> dict:
    """What coalescing can gain at most on this machine: ``clients`` checks in one in-process batch (one forward
    pass) vs the same number one at a time, no HTTP, no client threads. The served ratio cannot exceed it."""
    counter = iter(range(10**9, 2 * 10**9))
    one, batched = [], []
    for _ in range(repeats):
        texts = [text(next(counter)) for _ in range(clients)]
        started = time.perf_counter()
        for t in texts:
            local.classify(t)
        one.append(time.perf_counter() - started)
        texts = [text(next(counter)) for _ in range(clients)]
        started = time.perf_counter()
        local.classify_batch(texts)
        batched.append(time.perf_counter() - started)
    return {
        "one_at_a_time_ms": statistics.median(one) * 1000 / clients,
        "batched_ms": statistics.median(batched) * 1000 / clients,
        "ratio": statistics.median(one) / statistics.median(batched),
    }


def token_floor(local: LlamaGuard, length: int, step: int) -> dict:
    """The tokens the growing answer's checks run (each: its new text and the instructions after it, which no
    cache can hold since they follow the text) over the tokens of one check of the full text, both with the
    policy prefix cached: the least the ten checks can cost relative to one when cost follows tokens."""
    full = answer(7, length)
    counts = []
    for cuts in ([length], range(step, length + 1, step)):
        backend = guard_on(local).backend  # an empty KV store but for the policy prefix
        backend.score(local.build_prompts("warm up"))
        ran = 0
        for cut in cuts:  # the backend's own count (a verdict of the random model may be undecided: no count)
            (prompt,) = local.build_prompts(full[:cut])
            (scores,) = backend.score([prompt])
            ran += len(prompt.input_ids) - scores.reused_tokens
        counts.append(ran)
    full_ran, ran = counts
    return {"ten_checks_tokens": ran, "one_check_tokens": full_ran, "ratio": ran / full_ran}


def growing(url_reuse: str, url_plain: str, repeats: int, length: int, step: int) -> dict:
    def ten_checks(http: httpx.Client, seed: int) -> None:
        full = answer(seed, length)
        for cut in range(step, length + 1, step):
            ok(http.post("/v1/moderations", json={"input": full[:cut]}))

    def one_check(http: httpx.Client, seed: int) -> None:
        ok(http.post("/v1/moderations", json={"input": answer(seed, length)}))

    rows = {"reuse": [], "plain": [], "full": []}
    with httpx.Client(base_url=url_reuse, timeout=300) as reuse, httpx.Client(base_url=url_plain, timeout=300) as plain:
        for r in range(repeats):
            seed = 1000 + r * 3
            rows["full"].append(median_s(lambda seed=seed: one_check(reuse, seed), 1))
            rows["reuse"].append(median_s(lambda seed=seed: ten_checks(reuse, seed + 1), 1))
            rows["plain"].append(median_s(lambda seed=seed: ten_checks(plain, seed + 2), 1))
    full, reuse_s, plain_s = (statistics.median(rows[k]) for k in ("full", "reuse", "plain"))
    return {
        "checks": length // step,
        "full_check_ms": full * 1000,
        "with_kv_reuse_ms": reuse_s * 1000,
        "without_kv_reuse_ms": plain_s * 1000,
        "ratio": reuse_s / full,
        "ratio_without_reuse": plain_s / full,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repetitions on the tiny model (proves it runs)")
    parser.add_argument("--model", help="model folder (default: a test model built for the run)")
    parser.add_argument("--output", default=str(RESULTS / "bench_serve.json"))
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    model_dir, size = bench_model(args.model, args.quick)
    repeats, n = (2, 8) if args.quick else (5, 24)
    base = LlamaGuard.from_pretrained(model_dir)
    local, served, plain = guard_on(base), guard_on(base), guard_on(base, prefix_caching=False)
    settings = ServeSettings(max_pending=4096)
    with (
        BackgroundServer(create_app(served, settings)) as server,
        BackgroundServer(create_app(plain, settings)) as bare,
    ):
        local.classify("warm up")
        with httpx.Client(base_url=server.url, timeout=300) as http:
            results = {"overhead": overhead(local, http, repeats, n)}
        results["concurrency"] = throughput(server.url, repeats, n * 2, 16)
        results["concurrency"]["ceiling"] = batching_ceiling(local, repeats, 16)
        results["growing_answer"] = growing(server.url, bare.url, repeats, 2000, 200)
        results["growing_answer"]["token_floor"] = token_floor(local, 2000, 200)
    results["meta"] = run_meta(model_dir, size, args.quick)
    o, c, g = results["overhead"], results["concurrency"], results["growing_answer"]
    print(
        f"served vs in-process, one client   {o['ratio']:.2f}x  ({o['served_ms']:.1f} vs {o['in_process_ms']:.1f} ms/check; target <= 1.15x)"
    )
    ceiling, floor = c["ceiling"], g["token_floor"]
    print(
        f"16 concurrent clients vs one        {c['ratio']:.2f}x throughput  ({c['16_clients_per_s']:.1f} vs {c['one_client_per_s']:.1f} checks/s; target >= 2x)"
    )
    print(
        f"  ceiling: 16 checks in one in-process batch vs one at a time  {ceiling['ratio']:.2f}x  ({ceiling['batched_ms']:.1f} vs {ceiling['one_at_a_time_ms']:.1f} ms/check)"
    )
    print(
        f"growing answer, 10 checks vs 1      {g['ratio']:.2f}x with KV reuse, {g['ratio_without_reuse']:.2f}x without (target <= 2x)"
    )
    print(
        f"  floor: tokens the 10 checks run vs one check  {floor['ratio']:.2f}x  ({floor['ten_checks_tokens']} vs {floor['one_check_tokens']} tokens)"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    for guard in (local, served, plain, base):
        guard.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
