"""``llamaguard-guardrails moderate``: one verdict per conversation of a JSONL or Parquet file.

The main CLI wires this in with ``add_moderate_parser(subparsers)``; ``cmd_moderate(args)`` returns
the exit code: 0 when every input row got its output row (whatever the verdicts), 2 for bad input
(missing file, unknown format, bad policy, missing model).
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from ..cli_policy import add_policy_arguments, policy_from_args
from ..core.errors import GuardError

EXIT_DONE, EXIT_BAD_INPUT = 0, 2

DESCRIPTION = """\
Moderate a dataset: each JSONL line (or Parquet row) is a conversation - a JSON list of OpenAI-format
messages, or an object {"messages": [...], "id": ...}; Parquet needs a 'messages' column (JSON text or
lists) and may have an 'id' column. Each output row (JSONL or Parquet, by extension) holds line, id,
status (safe/unsafe/error/invalid), safe, categories, unsafe_probability and error, in input order.
A row that cannot be read gets an 'invalid' row in its place; the run goes on.

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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_moderate)
    return p


def cmd_moderate(args: argparse.Namespace) -> int:
    from .moderate import moderate

    try:
        policy = policy_from_args(args, fail_mode=args.fail_mode)
        options: dict[str, Any] = {}
        if args.vllm_url:
            from ..backends.vllm import from_vllm

            options["guard_factory"] = functools.partial(
                from_vllm, args.vllm_url, model=args.vllm_model or args.model, tokenizer=args.model
            )
        else:
            options["model"] = args.model
            if args.device:
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
            **options,
        )
    except (GuardError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(summary, file=sys.stderr)
    return EXIT_DONE


def main(argv: list[str] | None = None) -> int:
    """Run ``moderate`` alone (``python -m llamaguard_guardrails.scale.cli ...``)."""
    parser = argparse.ArgumentParser(prog="llamaguard-guardrails")
    add_moderate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
