"""``llamaguard-guardrails moderate``: one verdict per conversation of a JSONL or Parquet file.

The main CLI wires this in with ``add_moderate_parser(subparsers)``; ``cmd_moderate(args)`` returns
the exit code: 0 when every input row got its output row (whatever the verdicts); the main CLI
turns an error into exit 2 (bad input: missing file, unknown format, bad policy, missing model; or a
run that stopped, saying how many rows the output holds) and Ctrl-C into 130.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from ..cli_policy import add_policy_arguments, check_device, policy_from_args

EXIT_DONE = 0

DESCRIPTION = """\
Moderate a dataset: each JSONL line (or Parquet row) is a conversation - a JSON list of OpenAI-format
messages, or an object {"messages": [...], "id": ...}; Parquet needs a 'messages' column (JSON text or
lists) and may have an 'id' column. Each output row (JSONL or Parquet, by extension) holds line, id,
status (safe/unsafe/error/invalid), safe, categories, unsafe_probability and error, in input order.
A row that cannot be read (a blank line, bad UTF-8, bad JSON, nested too deeply, over --max-line-mb,
not a conversation) gets an 'invalid' row in its place, with the reason in 'error'; the run goes on.
The output grows batch by batch: after Ctrl-C or a crash it holds the rows of lines 1 to N.

  --engine local  one model in this process (default)
  --engine ray    a Ray Data actor pool of --num-workers models (local Ray, or --ray-address)
"""


def add_moderate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``moderate`` command to the main CLI's subparsers."""
    p = subparsers.add_parser(
        "moderate",
        help="moderate a JSONL or Parquet dataset (local or Ray)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="conversations: .jsonl or .parquet")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="verdicts: .jsonl or .parquet")
    p.add_argument(
        "--model", required=True, metavar="M", help="model folder or Hugging Face id (the tokenizer with --vllm-url)"
    )
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--num-workers", type=int, default=2, metavar="N", help="Ray actors, one model each (default 2)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="conversations per batch (default 8)")
    add_policy_arguments(p)
    p.add_argument("--fail-mode", choices=("closed", "open"), default="closed", help="verdict when the guard fails")
    p.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (default: a local instance)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G", help="GPUs per Ray actor")
    p.add_argument("--device", help="cuda, cpu ... for the in-process model (default: cuda when available)")
    p.add_argument("--vllm-url", metavar="URL", help="score on a vLLM server instead of loading the weights")
    p.add_argument("--vllm-model", metavar="NAME", help="the served model name on --vllm-url (default: --model)")
    p.add_argument(
        "--max-line-mb",
        type=float,
        default=64,
        metavar="MB",
        help="longer JSONL lines become invalid rows (default 64)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_moderate)
    return p


def cmd_moderate(args: argparse.Namespace) -> int:
    """Run ``moderate``; errors propagate (the main CLI prints them on one line, exit 2; Ctrl-C: 130)."""
    from .moderate import moderate

    policy = policy_from_args(args, fail_mode=args.fail_mode)
    if args.max_line_mb <= 0:
        raise ValueError("--max-line-mb must be > 0")
    options: dict[str, Any] = {}
    if args.vllm_url:
        from ..guard import LlamaGuard

        options["guard_factory"] = functools.partial(
            LlamaGuard.from_vllm, args.vllm_url, model=args.vllm_model or args.model, tokenizer=args.model
        )
    else:
        options["model"] = args.model
        if args.device:
            check_device(args.device)
            options["guard_options"] = {"device": args.device}
    summary = moderate(
        args.input,
        args.output,
        engine=args.engine,
        num_workers=args.num_workers,
        batch_size=args.batch_size,
        policy=policy,
        ray_address=args.ray_address,
        num_gpus_per_worker=args.gpus_per_worker,
        progress=not args.no_progress,
        max_line_bytes=int(args.max_line_mb * 1024 * 1024),
        **options,
    )
    print(summary, file=sys.stderr)
    return EXIT_DONE


def main(argv: list[str] | None = None) -> int:
    """The main CLI (``python -m llamaguard_guardrails.scale.cli moderate ...`` works too)."""
    from ..cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
