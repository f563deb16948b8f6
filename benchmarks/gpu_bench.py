"""GPU figures for one check on a random-weight model of the real Llama Guard 4 12B shape (bf16).

    python benchmarks/gpu_bench.py [--out results.json]         # on a GPU machine (~5 min on an H200)
    python benchmarks/gpu_bench.py --shape tiny --repeats 5     # dry run on CPU

``--tokenizer DIR`` takes the Llama 4 tokenizer files from a folder (e.g. a `make-test-model` folder; its
weights are not used); by default they are built for the run from the ``llama-models`` package. The 12B model is built directly on the GPU with random bf16 weights
(12,001,097,216 parameters, 24.0 GB), so no checkpoint is read. One run measures, side by side, for the
eager pass and the static pass captured in CUDA graphs (``compile="cuda_graphs"``), each with the prefix
cache off and on:

- the one-turn check p50/p95 against the floor of reading every weight once at the measured copy
  bandwidth (target: <= 2x the floor);
- throughput at batch 1, 8 and 32 (target: batch 32 >= 20x batch 1);
- the next turn of a ~2,000-token agent history with its earlier turns' KV reused vs the policy prefix only
  (decides the GPU default of ``prefix_caching``);
- the largest score difference between the eager and the graph pass (bf16: tolerance 2e-2 on every answer
  probability) and the capture time of the graphs (``warmup``);
- the bare forward and generate-and-parse baselines, a check with two images (eager), and the output head's
  two kernels (F.linear vs weight @ hidden.T) for 1, 2, 8 and 32 rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch


def build_model(shape: str, device: str, dtype: torch.dtype, full_attention: bool = False):
    """The model of ``shape`` (see llamaguard_guardrails.test_model.SIZES) with random weights, built directly on ``device``."""
    from transformers import Llama4ForConditionalGeneration

    from llamaguard_guardrails.test_model import make_config

    config = make_config(shape)
    config.text_config.attention_chunk_size = 8192
    if full_attention:  # identical to chunked attention below 8192 tokens
        config.text_config.layer_types = ["full_attention"] * config.text_config.num_hidden_layers
    with torch.device("meta"):
        model = Llama4ForConditionalGeneration(config)
    model = model.to_empty(device=device).to(dtype)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    return model.eval(), sum(p.numel() for p in model.parameters())


def copy_bandwidth(device: str, gigabytes: float = 4.0) -> float:
    """Bytes moved per second (read + write) by a device-to-device copy."""
    n = int(gigabytes * 2**30) // 2
    src = torch.empty(n, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    sync(device)
    start = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    sync(device)
    seconds = (time.perf_counter() - start) / 10
    del src, dst
    return 2 * n * 2 / seconds


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, repeats: int, device: str) -> list[float]:
    fn()
    sync(device)
    out = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - start)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 2 else max(values)


#: Largest difference between an eager and a graph-pass answer probability accepted in bf16.
BF16_TOLERANCE = 2e-2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", help="folder with the Llama 4 tokenizer files (default: built for the run)")
    parser.add_argument("--shape", choices=("lg4", "tiny", "bench"), default="lg4", help="lg4: the real 12B shape")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", default="gpu_bench.json")
    parser.add_argument("--full-attention", action="store_true", help="full-attention layer types (exact < 8192)")
    parser.add_argument("--compile", default="cuda_graphs", help="the static path's compile option")
    parser.add_argument("--profile", action="store_true", help="print the top ops of one eager and one graph check")
    args = parser.parse_args(argv)
    # Random weights answer neither "safe" nor "unsafe": the fail-closed warnings would flood the output. Capture
    # errors are in the results.
    logging.getLogger("llamaguard_guardrails").setLevel(logging.ERROR)

    from bench_guard import agent_next_turn, head_kernels  # this folder is on sys.path when run as a script

    from llamaguard_guardrails import LlamaGuard, Policy
    from llamaguard_guardrails.backends.base import AnswerTokens
    from llamaguard_guardrails.backends.transformers import TransformersBackend
    from llamaguard_guardrails.core.prompt import EOT
    from llamaguard_guardrails.loading import load_prompt_builder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    info: dict = {"torch": torch.__version__, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    import transformers

    info["transformers"] = transformers.__version__
    bandwidth = copy_bandwidth(device, 4.0 if device == "cuda" else 0.25)
    start = time.perf_counter()
    model, params = build_model(args.shape, device, dtype, args.full_attention)
    info["layer_types"] = sorted(set(model.config.text_config.layer_types))
    info.update(parameters=params, build_s=time.perf_counter() - start)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    builder = load_prompt_builder(args.tokenizer or tokenizer_folder())
    tokens = AnswerTokens.from_tokenizer(builder.encode_text, builder.ids[EOT])
    passing = Policy(threshold=1.0)  # the safe path: what most checks cost

    def make(prefix_caching: bool, compile: str | None = None) -> LlamaGuard:
        backend = TransformersBackend(
            model, tokens, 200018, builder.decode, prefix_caching=prefix_caching, compile=compile
        )
        return LlamaGuard(backend, builder, cache_size=0, micro_batching=False)

    guards = {
        "eager": make(False),
        "eager_prefix": make(True),
        "graphs": make(False, args.compile),
        "graphs_prefix": make(True, args.compile),
    }
    results: dict = {"compile": args.compile, "bf16_tolerance": BF16_TOLERANCE}
    for name in ("graphs", "graphs_prefix"):  # capture (or compile) the usual shapes first, and time it
        backend = guards[name].backend
        backend.warmup(guards[name].build_prompts, batch_sizes=(1, 8, 32))
        results[f"{name}_warmup"] = {
            "warmup_s": backend.warmup_s,
            "capture_s": backend.graphs.capture_s,
            "graphs": backend.graphs.graphs,
            "buckets": len(backend.graphs._runners),
            "static_kv_GB": backend.graphs.nbytes / 1e9,
            "capture_errors": backend.graphs.capture_errors[:3],
        }

    one_turn = [{"role": "user", "content": "How do I reset my router to factory settings?"}]
    (prompt,) = guards["eager"].build_prompts(one_turn)
    ids = torch.tensor([prompt.input_ids], device=device)
    mask = torch.ones_like(ids)
    results.update(prompt_tokens=len(prompt.input_ids), prefix_tokens=prompt.prefix_length)
    for name, guard in guards.items():
        times = timed(lambda g=guard: g.classify(one_turn, policy=passing), args.repeats, device)
        row = {"p50_ms": statistics.median(times) * 1000, "p95_ms": pct(times, 95) * 1000, "n": args.repeats}
        for batch in (1, 8, 32):
            convs = [[{"role": "user", "content": f"Question {i}: how do I reset my router?"}] for i in range(batch)]
            batch_times = timed(
                lambda c=convs, g=guard, b=batch: g.classify_batch(c, policy=passing, batch_size=b),
                max(5, args.repeats // 5),
                device,
            )
            row[f"batch_{batch}_checks_per_s"] = batch / statistics.median(batch_times)
        row["batch_32_over_batch_1"] = row["batch_32_checks_per_s"] / row["batch_1_checks_per_s"]
        results[f"check_{name}"] = row

    def bare() -> None:
        from llamaguard_guardrails.backends import forward

        with torch.inference_mode():
            hidden, _ = forward.hidden_states(model, ids, attention_mask=mask)
            forward.logits(model, hidden[:, -1:, :])

    def generate() -> None:
        with torch.inference_mode():
            model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=10,
                min_new_tokens=10,
                do_sample=False,
                pad_token_id=200018,
            )

    for name, fn, n in (
        ("bare_forward", bare, args.repeats),
        ("generate10_baseline", generate, max(5, args.repeats // 5)),
    ):
        times = timed(fn, n, device)
        results[name] = {"p50_ms": statistics.median(times) * 1000, "p95_ms": pct(times, 95) * 1000, "n": n}

    history = []
    for turn in range(12):  # a multi-turn agent history of about 2,000 tokens
        history += [
            {"role": "user", "content": f"Step {turn}: please check the logs of service {turn} and summarise errors."},
            {"role": "assistant", "content": "Here is what I found in the logs: " + "connection reset by peer; " * 12},
        ]
    for name in ("eager_prefix", "graphs_prefix"):
        results[f"agent_next_turn_{name}"] = agent_next_turn(guards[name], max(5, args.repeats // 5), history)
    results["agent_history_whole_ms"] = {
        name: statistics.median(timed(lambda g=guards[name]: g.classify(history, policy=passing), 5, device)) * 1000
        for name in ("eager", "graphs")
    }
    results["eager_vs_graphs"] = score_differences(guards, one_turn, history)
    results["two_images"] = two_images(guards["eager_prefix"], passing, max(5, args.repeats // 5), device)
    results["head_kernels"] = head_kernels(model, max(5, args.repeats // 5))

    floor_ms = weight_bytes / bandwidth * 1000
    results.update(copy_bandwidth_GBps=bandwidth / 1e9, weight_GB=weight_bytes / 1e9, weight_read_floor_ms=floor_ms)
    best = min(results[f"check_{name}"]["p50_ms"] for name in guards)
    results["summary"] = {
        "best_one_turn_p50_over_floor": best / floor_ms,
        "target_one_turn": "<= 2",
        "graphs_batch_32_over_batch_1": results["check_graphs"]["batch_32_over_batch_1"],
        "eager_batch_32_over_batch_1": results["check_eager"]["batch_32_over_batch_1"],
        "target_batch": ">= 20",
        "graphs_speedup_one_turn": results["check_eager"]["p50_ms"] / results["check_graphs"]["p50_ms"],
        "next_turn_reuse_speedup_eager": results["agent_next_turn_eager_prefix"]["speedup"],
        "next_turn_reuse_speedup_graphs": results["agent_next_turn_graphs_prefix"]["speedup"],
        "scores_within_bf16_tolerance": results["eager_vs_graphs"]["max_abs_difference"] <= BF16_TOLERANCE,
    }
    if device == "cuda":
        results["max_memory_allocated_GB"] = torch.cuda.max_memory_allocated() / 1e9
    results["info"] = info
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        for name in ("eager", "graphs"):
            with profile(activities=activities) as prof:
                guards[name].classify(one_turn, policy=passing)
                sync(device)
            print(f"--- {name} check")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))
    print(json.dumps(results, indent=2))
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


def tokenizer_folder() -> str:
    """A temporary folder with the real Llama 4 tokenizer and processor files (no weights)."""
    import tempfile

    from llamaguard_guardrails.test_model.factory import make_config, make_processor

    folder = tempfile.mkdtemp(prefix="llama4-tokenizer-")
    make_processor().save_pretrained(folder)
    make_config("tiny").save_pretrained(folder)
    return folder


def score_differences(guards: dict, one_turn: list[dict], history: list[dict]) -> dict:
    """Largest difference of any answer probability between the eager and the graph pass (same prefix setting),
    over single checks, a batch of eight and the agent history with and without its KV reused."""
    conversations = [one_turn, history] + [
        [{"role": "user", "content": f"Question {i}: is it safe to mix bleach and vinegar at home?"}] for i in range(8)
    ]
    worst, count = 0.0, 0
    for eager, graphs in (("eager", "graphs"), ("eager_prefix", "graphs_prefix")):
        prompts = [guards[eager].build_prompts(c)[0] for c in conversations]
        for want, got in (
            (guards[eager].backend.score(prompts[:2]), guards[graphs].backend.score(prompts[:2])),
            (guards[eager].backend.score(prompts[2:]), guards[graphs].backend.score(prompts[2:])),
        ):
            for a, b in zip(want, got, strict=True):
                fields = ("p_safe", "p_unsafe", "p_blank", "p_safe_after_blank", "p_unsafe_after_blank")
                worst = max(worst, *(abs(getattr(a, f) - getattr(b, f)) for f in fields))
                count += 1
    return {"max_abs_difference": worst, "scores_compared": count, "tolerance": BF16_TOLERANCE}


def two_images(guard, policy, repeats: int, device: str) -> dict:
    from PIL import Image

    picture = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": Image.new("RGB", (336, 336), (120, 30, 30))},
                {"type": "image", "image": Image.new("RGB", (1024, 768), (30, 120, 30))},
                {"type": "text", "text": "Is it safe to post these photos?"},
            ],
        },
    ]
    (prompt,) = guard.build_prompts(picture)
    times = timed(lambda: guard.classify(picture, policy=policy), repeats, device)
    return {
        "p50_ms": statistics.median(times) * 1000,
        "prompt_tokens": len(prompt.input_ids),
        "error": guard.classify(picture, policy=policy).error,
    }


if __name__ == "__main__":
    sys.exit(main())
