"""The grey zone and out-of-depth verdicts in the core: policy validation, the three outcomes, languages, images."""

from __future__ import annotations

import pytest

from llamaguard_guardrails import Policy
from llamaguard_guardrails.core.depth import SUPPORTED_LANGUAGES, TESTED_IMAGES, assess_texts
from llamaguard_guardrails.core.errors import InvalidPolicyError
from llamaguard_guardrails.testing import marker_category, marker_probability, scripted_guard

from conftest import make_image, png_bytes

THAI = "สวัสดีครับ วันนี้อากาศดีมาก ผมจะไปตลาดเพื่อซื้อผลไม้และผัก"
SWAHILI = "Habari yako? Leo ninaenda sokoni kununua matunda na mboga kwa ajili ya familia yangu."


@pytest.fixture(scope="module")
def marked(test_model_dir):
    """Probability from a ``[p=..]`` marker, category line from a ``[cat=..]`` marker; no verdict cache."""
    return scripted_guard(test_model_dir, marker_category, probability=marker_probability, cache_size=0)


@pytest.mark.parametrize(
    ("review", "threshold"), [(0.5, 0.5), (0.6, 0.5), (-0.1, 0.5), (0.2, 0.0), (1.0, 1.0), (1.2, 0.5)]
)
def test_a_review_threshold_must_lie_in_zero_to_below_the_threshold(review, threshold):
    with pytest.raises(InvalidPolicyError, match="review_threshold"):
        Policy(review_threshold=review, threshold=threshold)


@pytest.mark.parametrize(("review", "threshold"), [(0.0, 0.5), (0.3, 0.5), (0.99, 1.0), (0.0, 0.01)])
def test_a_review_threshold_below_the_threshold_is_accepted(review, threshold):
    assert Policy(review_threshold=review, threshold=threshold).review_threshold == review


def test_an_unknown_out_of_depth_choice_is_refused():
    with pytest.raises(InvalidPolicyError, match="out_of_depth"):
        Policy(out_of_depth="ask")


@pytest.mark.parametrize("p", [0.0, 0.1, 0.29, 0.3, 0.31, 0.45, 0.49, 0.5, 0.51, 0.9, 1.0])
@pytest.mark.parametrize("review", [None, 0.3])
def test_the_outcome_follows_the_two_thresholds(marked, p, review):
    policy = Policy(threshold=0.5, review_threshold=review)
    verdict = marked.classify(f"Send the report to the whole company [p={p}] [cat=S7]", policy=policy)
    expected = "block" if p >= 0.5 else "review" if review is not None and p >= review else "allow"
    assert verdict.outcome == expected
    assert verdict.safe == (expected != "block") and verdict.needs_review == (expected == "review")
    assert verdict.categories == ([] if expected == "allow" else ["S7"])
    assert verdict.review_threshold == review


def test_a_grey_zone_category_the_policy_excludes_is_allowed(marked):
    policy = Policy(review_threshold=0.2, excluded_categories=["S7"])
    verdict = marked.classify("Post the address [p=0.3] [cat=S7]", policy=policy)
    assert verdict.outcome == "allow" and verdict.ignored_categories == ["S7"]


def test_an_unreadable_category_line_in_the_grey_zone_goes_to_a_human(marked):
    verdict = marked.classify("No category marker here [p=0.3]", policy=Policy(review_threshold=0.2))
    assert verdict.outcome == "review" and verdict.categories == []


def test_the_guards_failure_is_never_a_review(test_model_dir):
    # a model step far slower than the deadline, so the deadline is missed whatever the machine's load
    slow = scripted_guard(test_model_dir, marker_category, probability=marker_probability, cache_size=0)
    slow.backend.delay_s = 3.0
    try:
        verdict = slow.classify("x [p=0.3]", policy=Policy(review_threshold=0.2, timeout_s=0.05))
    finally:
        slow.close()
    assert verdict.error and verdict.outcome == "block"


# -- languages and images ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "code", "supported"), [(THAI, "th", True), (SWAHILI, "sw", False)])
def test_a_verdict_names_the_language_it_judged_and_whether_it_is_supported(marked, text, code, supported):
    verdict = marked.classify(text)
    assert verdict.languages == [code]
    assert verdict.trusted == supported and (code in SUPPORTED_LANGUAGES) == supported
    assert verdict.outcome == "allow"  # the default: allow, and say so
    if not supported:
        assert "sw" in verdict.out_of_depth[0] and "not one Llama Guard 4 supports" in verdict.out_of_depth[0]


@pytest.mark.parametrize(("choice", "outcome"), [("allow", "allow"), ("review", "review"), ("block", "block")])
def test_the_policy_decides_what_an_unsupported_language_gets(marked, choice, outcome):
    assert marked.classify(SWAHILI, policy=Policy(out_of_depth=choice)).outcome == outcome
    assert marked.classify(THAI, policy=Policy(out_of_depth=choice)).outcome == "allow"


def test_out_of_depth_never_lowers_a_block(marked):
    verdict = marked.classify(f"{SWAHILI} [p=0.9] [cat=S1]", policy=Policy(out_of_depth="allow"))
    assert verdict.outcome == "block" and verdict.categories == ["S1"] and not verdict.trusted


@pytest.mark.parametrize("count", [1, TESTED_IMAGES, TESTED_IMAGES + 1])
def test_images_beyond_the_tested_count_are_out_of_depth(marked, count):
    url = "data:image/png;base64," + __import__("base64").b64encode(png_bytes(make_image(32, 32))).decode()
    parts = [{"type": "text", "text": "What is in these pictures?"}] + [
        {"type": "image_url", "image_url": {"url": url}} for _ in range(count)
    ]
    verdict = marked.classify([{"role": "user", "content": parts}], policy=Policy(out_of_depth="review"))
    assert verdict.trusted == (count <= TESTED_IMAGES)
    assert verdict.outcome == ("allow" if count <= TESTED_IMAGES else "review")


@pytest.mark.parametrize("text", ['run_python {"code": "print(1)"}', "ok", "12345 67890 !!!"])
def test_code_and_short_text_name_no_language(text):
    assert assess_texts([text], images=0).languages == ()


def test_the_depth_modules_examples_run():
    import doctest

    from llamaguard_guardrails.core import depth

    result = doctest.testmod(depth)
    assert result.attempted >= 2 and result.failed == 0


def test_a_block_for_an_unsupported_language_says_why(marked):
    from llamaguard_guardrails import UnsafeContentError

    with pytest.raises(UnsafeContentError, match="out of its depth: language sw"):
        marked.check(SWAHILI, policy=Policy(out_of_depth="block"))
