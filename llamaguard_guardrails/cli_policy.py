"""The policy options every command shares: ``--exclude``, ``--category``, ``--threshold``."""

from __future__ import annotations

import argparse
from typing import Any

from .core.errors import InvalidPolicyError
from .core.policy import Policy


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


def policy_from_args(args: argparse.Namespace, **extra: Any) -> Policy:
    """The policy the options describe (``InvalidPolicyError`` says which option is wrong)."""
    data: dict[str, Any] = dict(extra)
    if getattr(args, "exclude", None):
        data["excluded_categories"] = args.exclude
    if getattr(args, "category", None):
        data["custom_categories"] = custom_categories(args.category)
    if getattr(args, "threshold", None) is not None:
        data["threshold"] = args.threshold
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
