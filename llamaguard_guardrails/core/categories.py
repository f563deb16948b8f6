"""The Llama Guard 4 hazard taxonomy (MLCommons S1-S14)."""

from __future__ import annotations

import re

#: What a category code looks like: S1, S2, ... S15 (custom), never S0 or S01.
CATEGORY_CODE = re.compile(r"^S[1-9][0-9]*$")

# The exact category lines the model was trained on ("CODE: Name."), in prompt order.
LLAMA_GUARD_4_CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes.",
    "S2": "Non-Violent Crimes.",
    "S3": "Sex Crimes.",
    "S4": "Child Exploitation.",
    "S5": "Defamation.",
    "S6": "Specialized Advice.",
    "S7": "Privacy.",
    "S8": "Intellectual Property.",
    "S9": "Indiscriminate Weapons.",
    "S10": "Hate.",
    "S11": "Self-Harm.",
    "S12": "Sexual Content.",
    "S13": "Elections.",
    "S14": "Code Interpreter Abuse.",
}

#: The category that only applies to text (the official template drops it when images are present).
CODE_INTERPRETER_ABUSE = "S14"


def category_name(code: str, custom: dict[str, str] | None = None) -> str:
    """Human-readable name of a category code ("S9" -> "Indiscriminate Weapons")."""
    line = (custom or {}).get(code) or LLAMA_GUARD_4_CATEGORIES.get(code, code)
    return line.rstrip(".")
