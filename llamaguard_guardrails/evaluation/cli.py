"""``llamaguard-guardrails evaluate``: metrics of the guard on labelled conversations, policies side by side.

The main CLI wires this in with ``add_evaluate_parser(subparsers)``; ``cmd_evaluate(args)`` returns
0 when the report was made (whatever the metrics), 2 for bad input (missing file, unknown format,
bad policy, missing model, mismatched verdicts file, missing ``[evaluate]`` extra).
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


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` command to the main CLI's subparsers."""
    p = subparsers.add_parser(
        "evaluate",
        help="measure the guard on labelled data (precision, recall, F1, FPR, AUPRC, thresholds)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="LABELLED", help="labelled conversations: .jsonl or .parquet")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="M", help="model folder or Hugging Face id (the tokenizer with --vllm-url)")
    source.add_argument(
        "--verdicts", metavar="OUT", help="score this `moderate` output of LABELLED instead of running the model"
    )
    p.add_argument(
        "--policy", action="append", default=[], metavar="FILE.json", help="a policy to compare (repeatable)"
    )
    add_policy_arguments(p)
    p.add_argument(
        "--target-fpr", type=float, default=0.05, metavar="F", help="pick the threshold for this FPR (default 0.05)"
    )
    p.add_argument("--report", metavar="REPORT.json", help="write the whole report as JSON")
    p.add_argument("--report-rows", action="store_true", help="with --report: add every scored row")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots (PR, ROC, score histograms, category F1)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--num-workers", type=int, default=2, metavar="N", help="Ray actors, one model each (default 2)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="conversations per batch (default 8)")
    p.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (default: a local instance)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G", help="GPUs per Ray actor")
    p.add_argument("--device", help="cuda, cpu ... for the in-process model (default: cuda when available)")
    p.add_argument("--vllm-url", metavar="URL", help="score on a vLLM server instead of loading the weights")
    p.add_argument("--vllm-model", metavar="NAME", help="the served model name on --vllm-url (default: --model)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)
    return p


def _policies(args: argparse.Namespace) -> dict[str, Any]:
    """The --policy files (named by their file names), then the command line's policy."""
    from .run import describe, named_policies, unique_names

    items = named_policies(args.policy) if args.policy else []
    command_line = bool(args.exclude or args.category or args.threshold is not None)
    if command_line or not items:
        policy = policy_from_args(args)
        items.append((describe(policy) if command_line else "default", policy))
    return dict(unique_names(items))


def _source(args: argparse.Namespace) -> dict[str, Any]:
    if args.verdicts:
        return {"verdicts": args.verdicts}
    if args.vllm_url:
        from ..guard import LlamaGuard

        factory = functools.partial(
            LlamaGuard.from_vllm, args.vllm_url, model=args.vllm_model or args.model, tokenizer=args.model
        )
        return {"guard_factory": factory}
    return {"model": args.model, "guard_options": {"device": args.device} if args.device else None}


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .run import evaluate

    try:
        report = evaluate(
            args.input,
            policies=_policies(args),
            target_fpr=args.target_fpr,
            engine=args.engine,
            num_workers=args.num_workers,
            batch_size=args.batch_size,
            ray_address=args.ray_address,
            num_gpus_per_worker=args.gpus_per_worker,
            progress=not args.no_progress,
            **_source(args),
        )
        print(report.table())
        if args.report:
            report.to_json(args.report, rows=args.report_rows)
            print(f"\nreport: {args.report}", file=sys.stderr)
        if args.plots:
            paths = report.save_plots(args.plots)
            print(f"plots: {', '.join(str(p) for p in paths)}", file=sys.stderr)
    except (GuardError, ValueError, OSError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_DONE


def main(argv: list[str] | None = None) -> int:
    """Run ``evaluate`` alone (``python -m llamaguard_guardrails.evaluation.cli ...``)."""
    parser = argparse.ArgumentParser(prog="llamaguard-guardrails")
    add_evaluate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
