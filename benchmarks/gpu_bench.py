"""GPU figures for one check on a random-weight model of the real Llama Guard 4 12B shape (bf16).

    python benchmarks/gpu_bench.py --tokenizer DIR [--out results.json]        # on a GPU machine
    python benchmarks/gpu_bench.py --tokenizer DIR --shape tiny                  # dry run on CPU

DIR is any folder with the Llama 4 tokenizer and processor files (e.g. a `make-test-model` folder;
the weights there are not used). The 12B model is built directly on the GPU with random bf16 weights
(12,001,097,216 parameters, 24.0 GB), so no checkpoint is read. Prints p50/p95 latency of a one-turn
check, throughput at batch 1, 8 and 32, the generate-and-parse and bare-forward baselines, the next turn
of a ~2,000-token agent history with its earlier turns' KV reused (vs the policy prefix only), and the
floor of reading every weight once at the measured copy bandwidth.
"""

from __future__ import annotations

import argparse
import json
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True, help="folder with the Llama 4 tokenizer/processor files")
    parser.add_argument("--shape", choices=("lg4", "tiny"), default="lg4", help="lg4: the real 12B shape")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", default="gpu_bench.json")
    parser.add_argument("--full-attention", action="store_true", help="full-attention layer types (exact < 8192)")
    parser.add_argument("--profile", action="store_true", help="print the top CPU ops of one prefix-cached check")
    args = parser.parse_args(argv)

    from llamaguard_guardrails import LlamaGuard, Policy
    from llamaguard_guardrails.backends.base import AnswerTokens
    from llamaguard_guardrails.backends.transformers import TransformersBackend
    from llamaguard_guardrails.core.prompt import EOT
    from llamaguard_guardrails.guard import load_prompt_builder

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
    builder = load_prompt_builder(args.tokenizer)
    tokens = AnswerTokens.from_tokenizer(builder.encode_text, builder.ids[EOT])
    backend = TransformersBackend(model, tokens, 200018, builder.decode)  # prefix cache: the device default
    guard = LlamaGuard(backend, builder, cache_size=0, micro_batching=False)
    passing = Policy(threshold=1.0)  # the safe path: what most checks cost
    one_turn = [{"role": "user", "content": "How do I reset my router to factory settings?"}]
    (prompt,) = guard.build_prompts(one_turn)
    ids = torch.tensor([prompt.input_ids], device=device)
    mask = torch.ones_like(ids)
    results: dict = {"prompt_tokens": len(prompt.input_ids), "prefix_tokens": prompt.prefix_length}

    def check() -> None:
        guard.classify(one_turn, policy=passing)

    def check_no_prefix() -> None:
        backend.prefix_caching = False
        try:
            check()
        finally:
            backend.prefix_caching = True

    def bare() -> None:
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False, return_dict=False)

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
        ("check", check, args.repeats),
        ("check_no_prefix_cache", check_no_prefix, args.repeats),
        ("bare_forward", bare, args.repeats),
        ("generate10_baseline", generate, max(5, args.repeats // 5)),
    ):
        times = timed(fn, n, device)
        results[name] = {"p50_ms": statistics.median(times) * 1000, "p95_ms": pct(times, 95) * 1000, "n": n}
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
    (image_prompt,) = guard.build_prompts(picture)
    times = timed(lambda: guard.classify(picture, policy=passing), max(5, args.repeats // 5), device)
    results["two_images"] = {
        "p50_ms": statistics.median(times) * 1000,
        "prompt_tokens": len(image_prompt.input_ids),
        "error": guard.classify(picture, policy=passing).error,
    }
    history = []
    for turn in range(12):  # a multi-turn agent history of about 2,000 tokens
        history += [
            {"role": "user", "content": f"Step {turn}: please check the logs of service {turn} and summarise errors."},
            {"role": "assistant", "content": "Here is what I found in the logs: " + "connection reset by peer; " * 12},
        ]
    (history_prompt,) = guard.build_prompts(history)
    times = timed(lambda: guard.classify(history, policy=passing), max(5, args.repeats // 3), device)
    results["agent_history"] = {
        "p50_ms": statistics.median(times) * 1000,
        "p95_ms": pct(times, 95) * 1000,
        "prompt_tokens": len(history_prompt.input_ids),
    }
    from bench_guard import agent_next_turn  # this folder is on sys.path when run as a script

    results["agent_next_turn"] = agent_next_turn(guard, max(5, args.repeats // 5), history)
    for batch in (1, 8, 32):
        convs = [
            [{"role": "user", "content": f"Question {i}: how do I reset my router to factory settings?"}]
            for i in range(batch)
        ]
        times = timed(
            lambda c=convs, b=batch: guard.classify_batch(c, policy=passing, batch_size=b),
            max(5, args.repeats // 5),
            device,
        )
        p50 = statistics.median(times)
        results[f"batch_{batch}"] = {"p50_ms": p50 * 1000, "checks_per_s": batch / p50}
    results["copy_bandwidth_GBps"] = bandwidth / 1e9
    results["weight_GB"] = weight_bytes / 1e9
    results["weight_read_floor_ms"] = weight_bytes / bandwidth * 1000
    results["check_over_floor"] = results["check"]["p50_ms"] / results["weight_read_floor_ms"]
    results["generate_over_check"] = results["generate10_baseline"]["p50_ms"] / results["check"]["p50_ms"]
    if device == "cuda":
        results["max_memory_allocated_GB"] = torch.cuda.max_memory_allocated() / 1e9
    results["info"] = info
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        for name, fn in (("prefix-cached check", check), ("uncached check", check_no_prefix)):
            with profile(activities=activities) as prof:
                fn()
                sync(device)
            print(f"--- {name}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))
    print(json.dumps(results, indent=2))
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
