"""A policy setting is never lost or loosened on its way to the core.

Every way in that carries a policy from elsewhere (the served guard's wire between ``LlamaGuard.from_server`` and
the server, a Llama Stack shield's ``params`` and the provider's config, the CLI options) is checked for every
field of :class:`~llamaguard_guardrails.Policy`: each arrives as sent, and each is validated as strictly as
``Policy`` itself (``threshold: true`` is refused, never read as 1.0). ``VARIANTS`` must name every field, so a
new policy setting fails here until every way in carries it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from llamaguard_guardrails import LlamaGuard, Policy, UnsafeContentError
from llamaguard_guardrails.cli.common import add_policy_arguments, policy_from_args
from llamaguard_guardrails.core.errors import InvalidPolicyError
from llamaguard_guardrails.core.policy import CustomCategory
from llamaguard_guardrails.llama_stack.provider.config import (
    SHIELD_PARAM_KEYS,
    LlamaGuardProviderConfig,
    shield_policy,
)
from llamaguard_guardrails.serve.app import _State, create_app
from llamaguard_guardrails.serve.background import BackgroundServer
from llamaguard_guardrails.serve.client import _policy_json
from llamaguard_guardrails.serve.schemas import ClassifyRequest
from llamaguard_guardrails.serve.settings import ServeSettings
from llamaguard_guardrails.testing import ScriptedBackend, marker_category, marker_probability

#: A value other than the default for every field of Policy.
VARIANTS: dict[str, Any] = {
    "excluded_categories": frozenset({"S6", "S7"}),
    "custom_categories": (CustomCategory(code="S15", description="Medical advice without a licence."),),
    "threshold": 0.4,
    "fail_mode": "open",
    "timeout_s": 12.5,
    "review_threshold": 0.2,
    "out_of_depth": "block",
}
#: Numeric fields, and values that are not numbers but a lax parser would read as one.
NUMBERS = ("threshold", "timeout_s", "review_threshold")
NOT_NUMBERS = (True, False, "0.5", "1", [0.5], {"value": 0.5})
#: The fields the CLI has no option for, and why.
NOT_CLI_OPTIONS = {
    "fail_mode": "a command's own option where it applies (moderate --fail-mode)",
    "timeout_s": "serve --timeout is the server's deadline",
}
CLI_OPTIONS = {
    "excluded_categories": ["--exclude", "S6,S7"],
    "custom_categories": ["--category", "S15=Medical advice without a licence."],
    "threshold": ["--threshold", "0.4"],
    "review_threshold": ["--review-threshold", "0.2"],
    "out_of_depth": ["--out-of-depth", "block"],
}
SWAHILI = "Habari yako? Leo ninaenda sokoni kununua matunda na mboga kwa ajili ya familia yangu."


def policies() -> list[tuple[str, Policy]]:
    """Each field set alone, then all of them together."""
    return [(name, Policy(**{name: value})) for name, value in VARIANTS.items()] + [("all", Policy(**VARIANTS))]


def settings(policy: Policy) -> dict[str, Any]:
    """The policy as configuration files write it (custom categories as a ``{code: description}`` mapping)."""
    data = policy.model_dump(mode="json")
    data["custom_categories"] = policy.custom_names
    return data


def test_every_field_of_the_policy_has_a_variant():
    assert set(VARIANTS) == set(Policy.model_fields)
    for name, value in VARIANTS.items():
        assert getattr(Policy(**{name: value}), name) != getattr(Policy(), name), name


# -- the served guard --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "policy"), policies(), ids=[n for n, _ in policies()])
def test_the_server_applies_the_whole_policy_the_client_sends(name, policy):
    """The client's request body, read by the server's schema, gives the server the client's policy: the same in
    every field but the deadline (capped at the server's) and the fail mode (the client applies it)."""
    body = json.dumps({"messages": "hi", "policy": _policy_json(policy)})
    request = ClassifyRequest.model_validate_json(body)
    applied = _State(ServeSettings(timeout_s=10.0)).policy(request.policy)
    expected = policy.model_copy(update={"fail_mode": "closed", "timeout_s": min(policy.timeout_s or 10.0, 10.0)})
    assert applied == expected


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
@pytest.mark.parametrize("field", NUMBERS)
def test_the_server_refuses_a_policy_number_that_is_not_a_number(served, field, value):
    policy = {field: value} | ({"threshold": 0.5} if field == "review_threshold" else {})
    response = httpx.post(f"{served.url}/v1/guard/classify", json={"messages": "hi", "policy": policy})
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def scripted(guard):
    """A guard whose probability and category line are written in the checked text (``[p=0.3] [cat=S7]``)."""
    backend = ScriptedBackend(guard.prompts, marker_category, probability=marker_probability)
    scripted = LlamaGuard(backend, guard.prompts, cache_size=0)
    yield scripted
    scripted.close()


@pytest.fixture(scope="module")
def served(scripted):
    with BackgroundServer(create_app(scripted, ServeSettings())) as server:
        yield server


@pytest.fixture(scope="module")
def remote(served):
    remote = LlamaGuard.from_server(served.url)
    yield remote
    remote.close()


@pytest.mark.parametrize("p", [0.1, 0.2, 0.3, 0.45, 0.5, 0.7])
def test_a_served_check_has_the_grey_zone_of_the_callers_policy(scripted, remote, p):
    policy = Policy(review_threshold=0.2, threshold=0.5)
    text = f"Forward the payroll file to this address [p={p}] [cat=S7]"
    local, served = scripted.classify(text, policy=policy), remote.classify(text, policy=policy)
    assert served.outcome == local.outcome == ("block" if p >= 0.5 else "review" if p >= 0.2 else "allow")
    assert served.review_threshold == 0.2


def test_a_served_check_blocks_what_the_callers_policy_says_is_out_of_depth(scripted, remote):
    policy = Policy(out_of_depth="block")
    assert scripted.classify(SWAHILI, policy=policy).outcome == "block"
    assert remote.classify(SWAHILI, policy=policy).outcome == "block"
    with pytest.raises(UnsafeContentError, match="out of its depth"):
        remote.check(SWAHILI, policy=policy)
    assert remote.classify(SWAHILI).outcome == "allow"  # the default lets it through (and says so)


# -- Llama Stack -----------------------------------------------------------------------------------------------


def test_a_shield_may_set_every_policy_field():
    assert set(SHIELD_PARAM_KEYS) == set(Policy.model_fields)


@pytest.mark.parametrize(("name", "policy"), policies(), ids=[n for n, _ in policies()])
def test_shield_params_and_the_provider_config_carry_every_field(name, policy):
    assert shield_policy(Policy(), settings(policy)) == policy
    assert LlamaGuardProviderConfig(**settings(policy)).policy() == policy


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
@pytest.mark.parametrize("field", NUMBERS)
def test_shield_params_and_the_provider_config_refuse_a_number_that_is_not_one(field, value):
    with pytest.raises(InvalidPolicyError, match=field):
        shield_policy(Policy(), {field: value})
    if isinstance(value, str):  # the run config's ${env.X} substitution gives strings: there "0.5" is 0.5
        assert getattr(LlamaGuardProviderConfig(**{field: "0.5"}), field) == 0.5
        return
    with pytest.raises(ValidationError, match=field):
        LlamaGuardProviderConfig(**{field: value})


# -- the command line ------------------------------------------------------------------------------------------


def test_the_cli_has_an_option_for_every_policy_field_but_those_it_says_why():
    assert set(CLI_OPTIONS) | set(NOT_CLI_OPTIONS) == set(Policy.model_fields)
    assert not set(CLI_OPTIONS) & set(NOT_CLI_OPTIONS)


@pytest.mark.parametrize("name", list(CLI_OPTIONS))
def test_each_cli_policy_option_reaches_the_policy(name):
    parser = argparse.ArgumentParser()
    add_policy_arguments(parser)
    policy = policy_from_args(parser.parse_args(CLI_OPTIONS[name]))
    assert getattr(policy, name) == VARIANTS[name]
    everything = policy_from_args(parser.parse_args([a for argv in CLI_OPTIONS.values() for a in argv]))
    assert everything == Policy(**{n: VARIANTS[n] for n in CLI_OPTIONS})


@pytest.mark.parametrize(
    "policy",
    [{"threshold": True}, {"review_threshold": 0.6, "threshold": 0.5}, {"out_of_depth": "ask"}, {"strict": True}],
    ids=["a bool threshold", "review above threshold", "an unknown choice", "an unknown field"],
)
def test_a_bad_policy_names_the_policy_as_what_to_fix(served, policy):
    """The 400 of a bad policy names it (``param``), so a client tells a bad policy from a bad conversation."""
    response = httpx.post(f"{served.url}/v1/guard/classify", json={"messages": "hi", "policy": policy})
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("policy")


def test_a_policy_that_leaves_no_room_for_content_is_a_policy_error(served, remote):
    """Custom categories so long that the prompt has no room left: a 400 naming the policy, so ``from_server``
    raises ``InvalidPolicyError`` as the in-process guard does."""
    custom = {f"S{15 + n}": "\U0001d51f" * 1999 for n in range(8)}  # a math letter: several tokens each
    response = httpx.post(
        f"{served.url}/v1/guard/classify", json={"messages": "hi", "policy": {"custom_categories": custom}}
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "policy"
    with pytest.raises(InvalidPolicyError, match="leaves no room"):
        remote.classify("hi", policy=Policy(custom_categories=custom))
