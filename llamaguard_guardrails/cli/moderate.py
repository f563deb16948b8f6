"""``moderate``: one verdict per conversation of a JSONL or Parquet file.

Exit 0 when every input row got its output row, whatever the verdicts; errors (bad input: missing
file, unknown format, bad policy, missing model; or a run that stopped, saying how many rows the
output holds) are the main CLI's: exit 2, Ctrl-C 130.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import common

SUMMARY = "moderate a JSONL or Parquet dataset (local or Ray)"
DESCRIPTION = """\
Moderate a dataset: each JSONL line (or Parquet row) is a conversation - a JSON list of OpenAI-format
messages, or an object {"messages": [...], "id": ...}; Parquet needs a 'messages' column (JSON text or
lists) and may have an 'id' column. Each output row (JSONL or Parquet, by extension) holds line, id,
status (safe/unsafe/error/invalid), safe, categories, unsafe_probability and error, in input order.
A row that cannot be read (a blank line, bad UTF-8, bad JSON, nested too deeply, over --max-line-mb,
not a conversation) gets an 'invalid' row in its place, with the reason in 'error'; the run goes on.
The output grows batch by batch: after Ctrl-C or a crash it holds the rows of lines 1 to N.

  --engine local  one model in this process (default)
  --engine ray    a pool of --num-workers Ray actors, one model each (local Ray, or --ray-address)
"""


def add_parsers(subparsers: Any) -> None:
    """Add the ``moderate`` command."""
    p = common.add_dataset_parser(subparsers, "moderate", SUMMARY, DESCRIPTION)
    p.add_argument("input", metavar="INPUT", help="conversations: .jsonl or .parquet")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="verdicts: .jsonl or .parquet")
    p.add_argument(
        "--model", required=True, metavar="M", help="model folder or Hugging Face id (the tokenizer with --vllm-url)"
    )
    common.add_policy_arguments(p)
    p.add_argument("--fail-mode", choices=("closed", "open"), default="closed", help="verdict when the guard fails")
    common.add_engine_arguments(p)
    p.add_argument(
        "--max-line-mb",
        type=float,
        default=64,
        metavar="MB",
        help="longer JSONL lines become invalid rows (default 64)",
    )
    p.set_defaults(func=cmd_moderate)


def cmd_moderate(args: argparse.Namespace) -> int:
    """Run ``moderate``; errors propagate (the main CLI prints them on one line)."""
    from ..scale.moderate import moderate

    policy = common.policy_from_args(args, fail_mode=args.fail_mode)
    if args.max_line_mb <= 0:
        raise ValueError("--max-line-mb must be > 0")
    summary = moderate(
        args.input,
        args.output,
        policy=policy,
        max_line_bytes=int(args.max_line_mb * 1024 * 1024),
        **common.engine_options(args),
        **common.guard_source(args),
    )
    print(summary, file=sys.stderr)
    return common.EXIT_OK
