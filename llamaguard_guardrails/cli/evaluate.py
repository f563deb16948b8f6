"""``evaluate``: metrics of the guard on labelled conversations, policies side by side.

Exit 0 when the report was made (whatever the metrics); errors (missing file, unknown format, bad
policy, missing model, mismatched verdicts file, missing ``[evaluate]`` extra) are the main CLI's: exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..files import output_path
from . import common

SUMMARY = "measure the guard on labelled data (precision, recall, F1, FPR, AUPRC, thresholds)"
DESCRIPTION = """\
Measure the guard on your own labelled conversations. Each JSONL line (or Parquet row) is a
conversation as `moderate` reads it plus labels: {"messages": [...], "unsafe": true, "categories": ["S9"]}
('unsafe' required, true or false; 'categories' optional, on unsafe rows). Prints precision, recall,
F1 and false-positive rate at each policy's threshold, AUPRC and ROC AUC, the best-F1 threshold, the
threshold for --target-fpr, per-category scores and latency; rows with unusable labels and rows the
guard could not decide are listed, never counted as safe or unsafe.

Policies: each --policy FILE.json (Policy fields, e.g. {"threshold": 0.4, "excluded_categories": ["S6"]})
and, when given or when there is no --policy, the one of --exclude/--category/--threshold. Policies that
differ only in threshold share one model pass.
"""


def add_parsers(subparsers: Any) -> None:
    """Add the ``evaluate`` command."""
    p = common.add_dataset_parser(subparsers, "evaluate", SUMMARY, DESCRIPTION)
    p.add_argument("input", metavar="LABELLED", help="labelled conversations: .jsonl or .parquet")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="M", help="model folder or Hugging Face id (the tokenizer with --vllm-url)")
    source.add_argument(
        "--verdicts", metavar="OUT", help="score this `moderate` output of LABELLED instead of running the model"
    )
    p.add_argument(
        "--policy", action="append", default=[], metavar="FILE.json", help="a policy to compare (repeatable)"
    )
    common.add_policy_arguments(p)
    p.add_argument(
        "--target-fpr", type=float, default=0.05, metavar="F", help="pick the threshold for this FPR (default 0.05)"
    )
    p.add_argument("--report", metavar="REPORT.json", help="write the whole report as JSON")
    p.add_argument("--report-rows", action="store_true", help="with --report: add every scored row")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots (PR, ROC, score histograms, category F1)")
    common.add_engine_arguments(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``evaluate`` and print the table; errors propagate (the main CLI prints them on one line)."""
    from ..evaluation.run import evaluate

    policies = _policies(args)
    if args.report:  # refused before the run: never an input (the labelled file, --verdicts, a --policy file)
        output_path(args.report, [args.input, args.verdicts, *args.policy], what="--report")
    source = {"verdicts": args.verdicts} if args.verdicts else common.guard_source(args)
    report = evaluate(
        args.input, policies=policies, target_fpr=args.target_fpr, **common.engine_options(args), **source
    )
    report = report.model_copy(update={"policy_files": [*report.policy_files, *args.policy]})  # never written over
    print(report.table())
    if args.report:
        report.to_json(args.report, rows=args.report_rows)
        print(f"\nreport: {args.report}", file=sys.stderr)
    if args.plots:
        paths = report.save_plots(args.plots)
        print(f"plots: {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return common.EXIT_OK


def _policies(args: argparse.Namespace) -> dict[str, Any]:
    """The --policy files (named by their file names), then the command line's policy."""
    from ..evaluation.policies import describe, named_policies, unique_names

    items = named_policies(args.policy) if args.policy else []
    command_line = bool(args.exclude or args.category or args.threshold is not None)
    if command_line or not items:
        policy = common.policy_from_args(args)
        items.append((describe(policy) if command_line else "default", policy))
    return dict(unique_names(items))
