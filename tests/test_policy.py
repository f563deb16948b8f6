"""Policies: validated settings with typed errors, and the category list they put in the prompt."""

from __future__ import annotations

import pytest

from llamaguard_guardrails import CustomCategory, InvalidPolicyError, Policy


def test_default_policy_lists_s1_to_s14_and_drops_s14_with_images():
    policy = Policy()
    assert list(policy.categories(has_images=False)) == [f"S{i}" for i in range(1, 15)]
    assert list(policy.categories(has_images=True)) == [f"S{i}" for i in range(1, 14)]
    assert policy.threshold == 0.5 and policy.fail_mode == "closed"


def test_excluded_and_custom_categories_keep_their_codes():
    policy = Policy(
        excluded_categories="S6, S7", custom_categories=[CustomCategory(code="S15", description="Medical.")]
    )
    cats = policy.categories(has_images=False)
    assert "S6" not in cats and "S7" not in cats and cats["S8"] == "Intellectual Property."
    assert list(cats)[-1] == "S15" and cats["S15"] == "Medical."


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"excluded_categories": {"S99"}}, "unknown category code"),
        ({"custom_categories": {"S3": "Dup."}}, "built-in"),
        ({"custom_categories": {"X1": "Bad code."}}, "must look like 'S15'"),
        ({"custom_categories": {"S15": "two\nlines"}}, "one non-empty line"),
        ({"excluded_categories": {f"S{i}" for i in range(1, 15)}}, "every category is excluded"),
        ({"fail_mode": "maybe"}, "fail_mode"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"thresold": 0.3}, "thresold"),
    ],
)
def test_bad_policies_get_typed_errors_naming_the_setting(kwargs, fragment):
    with pytest.raises(InvalidPolicyError, match=fragment):
        Policy(**kwargs)


def test_policies_are_immutable_and_derivable():
    base = Policy()
    strict = base.model_copy(update={"threshold": 0.2})
    assert base.threshold == 0.5 and strict.threshold == 0.2
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        base.threshold = 0.1  # type: ignore[misc]


# -- every way to build a policy validates, with a typed error naming the setting ------------

BAD_VALUES = {
    "threshold": [True, False, "0.5", b"0.5", None, float("nan"), float("inf"), -0.1, 1.5, [0.5], {"x": 1}],
    "timeout_s": [True, "1", 0, -1.0, float("nan"), float("inf"), [1.0], b"1"],
    "fail_mode": ["maybe", True, 0, None, b"closed", ["closed"]],
    "excluded_categories": ["S99", [6], [b"S6"], [None], 5, {"S1": 1}, b"S6", [f"S{i}" for i in range(1, 15)]],
    "custom_categories": [{"S15": 5}, [5], "S15", {"S15": ""}, {"S3": "Dup."}, {"X1": "Bad."}, {"S15": True}, 7],
}


def _json_value(value):
    import json
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        return json.dumps(value)
    except TypeError:  # bytes: no JSON form
        return None


def _paths(field, value):
    """Every way to make a Policy with ``field=value``: (name, thunk)."""
    base = Policy(threshold=0.4, timeout_s=3.0)
    paths = [
        ("Policy(...)", lambda: Policy(**{field: value})),
        ("model_validate", lambda: Policy.model_validate({field: value})),
        ("model_copy(update=...)", lambda: base.model_copy(update={field: value})),
        ("model_construct", lambda: Policy.model_construct(**{field: value})),
    ]
    encoded = _json_value(value)
    if encoded is not None:
        paths.append(("model_validate_json", lambda: Policy.model_validate_json(f'{{"{field}": {encoded}}}')))
    from llamaguard_guardrails.llama_stack.provider.config import shield_policy

    if value is not None:  # a shield param set to None means "keep the provider default"
        paths.append(("Llama Stack shield params", lambda: shield_policy(Policy(), {field: value})))
    return paths


@pytest.mark.parametrize(
    ("field", "value"), [(field, value) for field, values in BAD_VALUES.items() for value in values], ids=repr
)
def test_every_path_refuses_a_bad_value_with_a_typed_error_naming_the_setting(field, value):
    for name, make in _paths(field, value):
        with pytest.raises(InvalidPolicyError) as raised:
            policy = make()
            pytest.fail(f"{name} accepted {field}={value!r}: {policy!r}")
        message = str(raised.value)
        named = field.split("_")[0] in message or "category" in message
        assert named, f"{name}: {message}"


def test_the_cli_refuses_a_bad_threshold_with_a_typed_error():
    import argparse

    from llamaguard_guardrails.cli.common import policy_from_args

    for value in (float("nan"), float("inf"), 1.5, -0.5):
        with pytest.raises(InvalidPolicyError, match="threshold"):
            policy_from_args(argparse.Namespace(threshold=value))


def test_the_llama_stack_config_refuses_a_bool_threshold():
    from pydantic import ValidationError

    from llamaguard_guardrails.llama_stack.provider.config import LlamaGuardProviderConfig

    for field in ("threshold", "timeout_s"):
        with pytest.raises(ValidationError, match=field):
            LlamaGuardProviderConfig(**{field: True})
    assert LlamaGuardProviderConfig(threshold="0.4", timeout_s="2").policy().threshold == 0.4  # ${env.X} strings


@pytest.mark.parametrize("value", [0, 1, 0.25, 1.0])
def test_good_values_pass_every_path_and_stay_floats(value):
    for name, make in _paths("threshold", value):
        policy = make()
        assert policy.threshold == value and type(policy.threshold) is float, name


def test_model_copy_keeps_the_other_settings_and_validates_the_update():
    base = Policy(excluded_categories="S6", custom_categories={"S15": "Medical."}, timeout_s=2.0)
    copy = base.model_copy(update={"threshold": 0.2})
    assert (copy.excluded_categories, copy.custom_categories, copy.timeout_s) == (
        base.excluded_categories,
        base.custom_categories,
        2.0,
    )
    with pytest.raises(InvalidPolicyError, match="thresold"):
        base.model_copy(update={"thresold": 0.2})
