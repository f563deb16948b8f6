"""Verdicts as OpenAI moderation results: the category keys, their scores and the Llama Guard detail.

Every result carries all thirteen OpenAI category keys (so ``openai``'s ``Moderation`` model parses it
unchanged) and one key per Llama Guard code of the policy (``S1`` ... ``S14``, custom ``S15`` ...). A
code sets its own key and the OpenAI keys it falls under (:data:`OPENAI_KEYS`); codes with no OpenAI
counterpart (S6, S7, S8, S13, S14, custom) set only their own key. ``flagged`` is the verdict itself, never
derived from the keys: true unless the outcome is ``allow``, so a verdict in the policy's grey zone (``review``:
a moderation endpoint has no human to ask) is held back, and ``llama_guard.outcome`` says it waits for review.

Llama Guard 4 gives one probability that the content is unsafe, not one per category: a key that is set
scores that probability, every other key 0.0.
"""

from __future__ import annotations

from typing import Any

from ..core.categories import LLAMA_GUARD_4_CATEGORIES
from ..core.policy import Policy
from ..core.verdict import Verdict

#: The OpenAI moderation keys and the input types OpenAI applies each to (text only, or text and images).
OPENAI_CATEGORIES: dict[str, tuple[str, ...]] = {
    "harassment": ("text",),
    "harassment/threatening": ("text",),
    "hate": ("text",),
    "hate/threatening": ("text",),
    "illicit": ("text",),
    "illicit/violent": ("text",),
    "self-harm": ("text", "image"),
    "self-harm/instructions": ("text", "image"),
    "self-harm/intent": ("text", "image"),
    "sexual": ("text", "image"),
    "sexual/minors": ("text",),
    "violence": ("text", "image"),
    "violence/graphic": ("text", "image"),
}

#: The OpenAI keys a Llama Guard 4 code sets (besides its own key).
OPENAI_KEYS: dict[str, tuple[str, ...]] = {
    "S1": ("violence", "illicit/violent"),  # Violent Crimes
    "S2": ("illicit",),  # Non-Violent Crimes
    "S3": ("sexual", "illicit/violent"),  # Sex Crimes
    "S4": ("sexual/minors",),  # Child Exploitation
    "S5": ("harassment",),  # Defamation
    "S6": (),  # Specialized Advice
    "S7": (),  # Privacy
    "S8": (),  # Intellectual Property
    "S9": ("violence", "illicit/violent"),  # Indiscriminate Weapons
    "S10": ("hate",),  # Hate
    "S11": ("self-harm",),  # Self-Harm
    "S12": ("sexual",),  # Sexual Content
    "S13": (),  # Elections
    "S14": (),  # Code Interpreter Abuse
}


def category_keys(policy: Policy) -> list[str]:
    """Every key of a result under ``policy``: the OpenAI keys, then the policy's Llama Guard codes."""
    codes = [c for c in LLAMA_GUARD_4_CATEGORIES if c not in policy.excluded_categories]
    codes += [c.code for c in policy.custom_categories if c.code not in policy.excluded_categories]
    return [*OPENAI_CATEGORIES, *codes]


def moderation_result(verdict: Verdict, policy: Policy, *, has_images: bool = False) -> dict[str, Any]:
    """One entry of ``results``: the OpenAI fields and ``llama_guard`` (codes, probability, threshold, status)."""
    keys = category_keys(policy)
    hit = set()
    for code in verdict.categories:
        hit.add(code)
        hit.update(OPENAI_KEYS.get(code, ()))
    inputs = ("text", "image") if has_images else ("text",)
    applied = {key: [t for t in OPENAI_CATEGORIES.get(key, ("text", "image")) if t in inputs] for key in keys}
    return {
        "flagged": verdict.outcome != "allow",
        "categories": {key: key in hit for key in keys},
        "category_scores": {key: verdict.unsafe_probability if key in hit else 0.0 for key in keys},
        "category_applied_input_types": applied,
        "llama_guard": llama_guard_detail(verdict),
    }


def llama_guard_detail(verdict: Verdict) -> dict[str, Any]:
    """The Llama Guard part of a moderation result (OpenAI clients ignore it)."""
    return {
        "status": verdict.status,
        "outcome": verdict.outcome,
        "languages": list(verdict.languages),
        "out_of_depth": list(verdict.out_of_depth),
        "categories": list(verdict.categories),
        "category_names": list(verdict.category_names),
        "unsafe_probability": verdict.unsafe_probability,
        "threshold": verdict.threshold,
        "checked_role": verdict.checked_role,
        "windows": verdict.windows,
        "cached": verdict.cached,
        "latency_ms": verdict.latency_ms,
    }
