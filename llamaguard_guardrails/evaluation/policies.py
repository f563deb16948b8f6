"""The policies an evaluation compares: read from JSON files, named, and grouped by model pass.

Policies that differ only in ``threshold`` share one model pass (:func:`pass_key`): scores do not
depend on the threshold (see :mod:`.run`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import InvalidPolicyError
from ..core.json_text import loads_unambiguous
from ..core.policy import Policy
from ..files import DatasetError, read_bounded
from .labels import code_order

PolicyLike = Policy | Mapping[str, Any] | str | os.PathLike
Policies = PolicyLike | Sequence[PolicyLike] | Mapping[str, PolicyLike] | None


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """A :class:`Policy` from a JSON file of its fields (what ``policy.model_dump_json()`` writes)."""
    path = Path(path)
    try:
        data = loads_unambiguous(read_bounded(path, "policy file").decode("utf-8"))
    except DatasetError as exc:
        raise InvalidPolicyError(str(exc)) from exc
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, a number past Python's digit limit
        raise InvalidPolicyError(f"policy file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidPolicyError(
            f'policy file {path} must hold a JSON object of Policy fields, e.g. {{"threshold": 0.4}}'
        )
    try:
        return Policy(**data)
    except InvalidPolicyError as exc:
        raise InvalidPolicyError(f"policy file {path}: {exc}") from exc


def describe(policy: Policy) -> str:
    """A short name: ``t=0.5``, ``t=0.4 -S6,S7 +S15``."""
    name = f"t={policy.threshold:g}"
    if policy.excluded_categories:
        name += " -" + ",".join(sorted(policy.excluded_categories, key=code_order))
    if policy.custom_categories:
        name += " +" + ",".join(c.code for c in policy.custom_categories)
    if policy.fail_mode == "open":
        name += " fail-open"
    return name


def named_policies(policies: Policies) -> list[tuple[str, Policy]]:
    """``(name, Policy)`` pairs from a Policy, a dict of fields, a JSON file, a list of those, or a name -> one dict."""
    if policies is None:
        return [("default", Policy())]
    if isinstance(policies, Mapping) and not _is_field_dict(policies):
        items = [(str(k), _as_policy(v)) for k, v in policies.items()]
    elif isinstance(policies, Policy | Mapping | str | os.PathLike):
        items = [(_name_of(policies), _as_policy(policies))]
    else:
        items = [(_name_of(p), _as_policy(p)) for p in policies]
    if not items:
        raise InvalidPolicyError("no policy to evaluate")
    return unique_names(items)


def policy_files(policies: Policies) -> list[str]:
    """The JSON files among ``policies`` (in any of the shapes :func:`named_policies` takes), as given."""
    if isinstance(policies, str | os.PathLike):
        return [os.fspath(policies)]
    if policies is None or isinstance(policies, Policy):
        return []
    if isinstance(policies, Mapping):
        values = [] if _is_field_dict(policies) else list(policies.values())
    else:
        values = list(policies)
    return [os.fspath(v) for v in values if isinstance(v, str | os.PathLike)]


def _is_field_dict(value: Mapping[str, Any]) -> bool:
    return all(k in Policy.model_fields for k in value)


def _as_policy(value: PolicyLike) -> Policy:
    if isinstance(value, Policy):
        return value
    if isinstance(value, Mapping):
        return Policy(**value)
    return load_policy(value)


def _name_of(value: PolicyLike) -> str:
    if isinstance(value, str | os.PathLike):
        return Path(value).stem
    return describe(_as_policy(value))


def unique_names(items: list[tuple[str, Policy]]) -> list[tuple[str, Policy]]:
    """The names made unique: a repeated name gets `` #2``, `` #3`` ..."""
    seen: dict[str, int] = {}
    out = []
    for name, policy in items:
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name} #{seen[name]}", policy))
    return out


def pass_key(policy: Policy) -> tuple[Any, ...]:
    """What a model pass depends on: everything but the threshold."""
    return (policy.excluded_categories, policy.custom_categories, policy.fail_mode, policy.timeout_s)
