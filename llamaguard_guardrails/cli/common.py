"""What the commands share: exit codes, the policy options (``--exclude``, ``--category``, ``--threshold``,
``--review-threshold``, ``--out-of-depth``), ``--device`` checking, the dataset options of ``moderate`` and
``evaluate`` (engine, model source), and error reporting (one line on stderr, exit 2, never a traceback).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from ..core.errors import GuardError, InvalidPolicyError
from ..core.policy import Policy
from ..scale.records import describe_error

EXIT_OK, EXIT_UNSAFE, EXIT_BAD_INPUT, EXIT_REVIEW, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

log = logging.getLogger("llamaguard_guardrails.cli")


# -- policy --------------------------------------------------------------------------------------------


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exclude", metavar="S1,S2", help="category codes to leave out of the policy")
    parser.add_argument(
        "--category",
        action="append",
        metavar="'S15=Description.'",
        help="a custom category appended to the policy (repeatable; codes from S15 up)",
    )
    parser.add_argument(
        "--threshold", type=float, metavar="X", help="unsafe iff unsafe_probability >= X (0..1, default 0.5)"
    )
    parser.add_argument(
        "--review-threshold",
        type=float,
        metavar="X",
        help="grey zone for a human: X <= unsafe_probability < threshold needs review (default: none)",
    )
    parser.add_argument(
        "--out-of-depth",
        choices=("allow", "review", "block"),
        help="what a verdict the model is not known to judge well gets (an unsupported language; default allow)",
    )


def policy_from_args(args: argparse.Namespace, **extra: Any) -> Policy:
    """The policy the options describe (``InvalidPolicyError`` says which option is wrong)."""
    data: dict[str, Any] = dict(extra)
    if getattr(args, "exclude", None):
        data["excluded_categories"] = args.exclude
    if getattr(args, "category", None):
        data["custom_categories"] = custom_categories(args.category)
    for option in ("threshold", "review_threshold", "out_of_depth"):
        if getattr(args, option, None) is not None:
            data[option] = getattr(args, option)
    return Policy(**data)


def custom_categories(options: list[str]) -> dict[str, str]:
    """``["S15=Medical Advice."]`` -> ``{"S15": "Medical Advice."}``."""
    categories: dict[str, str] = {}
    for option in options:
        code, sep, description = option.partition("=")
        code = code.strip()
        if not sep or not code:
            raise InvalidPolicyError(f"--category {option!r} must look like 'S15=Medical Advice.'")
        if code in categories:
            raise InvalidPolicyError(f"--category {code} is given twice")
        categories[code] = description
    return categories


def check_device(device: str | None) -> None:
    """Refuse a ``--device`` torch does not know, before any model loads."""
    if device is None:
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"--device {device!r} is not a device name (cpu, cuda, cuda:1 ...)") from exc


# -- datasets: moderate and evaluate ----------------------------------------------------------------------


def add_dataset_parser(subparsers: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """The parser of a dataset command, its description printed as written."""
    return subparsers.add_parser(
        name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine and model-source options of the dataset commands (``--model`` is each command's own)."""
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument(
        "--num-workers", type=int, default=2, metavar="N", help="Ray actors, one model each (default 2)"
    )
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="conversations per batch (default 8)")
    parser.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (default: a local instance)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G", help="GPUs per Ray actor")
    parser.add_argument("--device", help="cuda, cpu ... for the in-process model (default: cuda when available)")
    parser.add_argument("--vllm-url", metavar="URL", help="score on a vLLM server instead of loading the weights")
    parser.add_argument("--vllm-model", metavar="NAME", help="the served model name on --vllm-url (default: --model)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``moderate`` / ``evaluate`` that :func:`add_engine_arguments` describes."""
    return {
        "engine": args.engine,
        "num_workers": args.num_workers,
        "batch_size": args.batch_size,
        "ray_address": args.ray_address,
        "num_gpus_per_worker": args.gpus_per_worker,
        "progress": not args.no_progress,
    }


def guard_source(args: argparse.Namespace) -> dict[str, Any]:
    """``guard_factory`` on ``--vllm-url`` (``--model`` is the tokenizer), else ``model`` and its ``--device``."""
    if args.vllm_url:
        from ..guard import LlamaGuard

        factory = functools.partial(
            LlamaGuard.from_vllm, args.vllm_url, model=args.vllm_model or args.model, tokenizer=args.model
        )
        return {"guard_factory": factory}
    device = getattr(args, "device", None)
    check_device(device)
    return {"model": args.model, "guard_options": {"device": device} if device else None}


# -- errors ----------------------------------------------------------------------------------------------


def error_line(exc: BaseException) -> str:
    """The one line a command prints for ``exc``: its message, then its notes (e.g. what was written)."""
    text = str(exc) if isinstance(exc, GuardError | OSError | ValueError) and str(exc) else describe_error(exc)
    notes = getattr(exc, "__notes__", None) or []
    return " ".join("; ".join([text, *notes]).split())


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command: any exception becomes ``error: ...`` on one line and exit 2 (the traceback with -v)."""
    try:
        return func(args)
    except KeyboardInterrupt as exc:
        notes = "; ".join(getattr(exc, "__notes__", None) or [])
        print(f"interrupted{': ' + notes if notes else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        log.info("the command failed", exc_info=True)  # the traceback, with -v only
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
