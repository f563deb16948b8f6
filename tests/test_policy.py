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
