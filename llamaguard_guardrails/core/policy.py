"""What counts as unsafe: categories, threshold and what to do when the guard itself fails."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .categories import CATEGORY_CODE, CODE_INTERPRETER_ABUSE, LLAMA_GUARD_4_CATEGORIES
from .errors import InvalidPolicyError


class CustomCategory(BaseModel):
    """A category added to the prompt, e.g. ``CustomCategory(code="S15", description="Medical Advice.")``."""

    model_config = ConfigDict(frozen=True)

    code: StrictStr
    description: StrictStr = Field(min_length=1, max_length=2000)

    @field_validator("code")
    @classmethod
    def _code_format(cls, code: str) -> str:
        if not CATEGORY_CODE.match(code):
            raise ValueError(f"category code {code!r} must look like 'S15'")
        if code in LLAMA_GUARD_4_CATEGORIES:
            raise ValueError(
                f"category code {code} is a built-in Llama Guard 4 category; "
                "pick a new code (S15 and up) for a custom category"
            )
        return code

    @field_validator("description")
    @classmethod
    def _one_line(cls, text: str) -> str:
        text = text.strip()
        if not text or "\n" in text or "\r" in text:
            raise ValueError("a custom category description must be one non-empty line")
        return text


class Policy(BaseModel):
    """A safety policy. Immutable; derive variants with ``policy.model_copy(update={...})``.

    - ``excluded_categories``: codes removed from the prompt and ignored in the answer.
    - ``custom_categories``: categories appended after the built-in ones.
    - ``threshold``: content is unsafe iff ``unsafe_probability >= threshold`` (0 blocks all, 1 passes
      all but certainty).
    - ``fail_mode``: ``"closed"`` (default) blocks when the guard cannot decide; ``"open"`` lets the
      content through and logs the failure at ERROR.
    - ``timeout_s``: deadline of one check; past it the fail mode applies.
    - ``review_threshold``: the grey zone for a human: ``review_threshold <= unsafe_probability < threshold``
      (with a category the policy keeps) needs review (``verdict.outcome == "review"``); ``None`` (default):
      no grey zone. Must be below ``threshold``.
    - ``out_of_depth``: what a verdict the model is not known to judge well gets (a language Llama Guard 4 does
      not support, more images than its model card tested; see ``core/depth.py``): ``"allow"`` (default: the
      verdict stands and says so in ``verdict.out_of_depth``), ``"review"`` or ``"block"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Strict types: a bool is not a number (threshold=True is not 1.0) and a string is not coerced into one.
    excluded_categories: frozenset[StrictStr] = frozenset()
    custom_categories: tuple[CustomCategory, ...] = ()
    threshold: StrictFloat = Field(default=0.5, ge=0.0, le=1.0, allow_inf_nan=False)
    fail_mode: Literal["closed", "open"] = "closed"
    timeout_s: StrictFloat | None = Field(default=None, gt=0, allow_inf_nan=False)
    review_threshold: StrictFloat | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    out_of_depth: Literal["allow", "review", "block"] = "allow"

    # Every way to make a Policy validates and raises InvalidPolicyError naming the setting: the constructor,
    # model_validate(_json/_strings), model_copy(update=...) and model_construct (pydantic skips validation in
    # the last two; here they validate).
    def __init__(self, **data: Any) -> None:
        with _policy_errors():
            super().__init__(**data)

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Policy:  # type: ignore[override]
        with _policy_errors():
            return super().model_validate(obj, **options)

    @classmethod
    def model_validate_json(cls, json_data: Any, **options: Any) -> Policy:  # type: ignore[override]
        with _policy_errors():
            return super().model_validate_json(json_data, **options)

    @classmethod
    def model_validate_strings(cls, obj: Any, **options: Any) -> Policy:  # type: ignore[override]
        with _policy_errors():
            return super().model_validate_strings(obj, **options)

    @classmethod
    def model_construct(cls, _fields_set: set[str] | None = None, **values: Any) -> Policy:  # type: ignore[override]
        """Validated, unlike pydantic's: an unchecked policy could hold ``threshold=True``."""
        return cls(**values)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Policy:  # type: ignore[override]
        """A copy with ``update`` applied, validated like a new policy (pydantic's copy does not validate)."""
        if not update:
            return self
        data = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**data, **update})

    @field_validator("excluded_categories", mode="before")
    @classmethod
    def _as_set(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [c for c in (s.strip() for s in value.split(",")) if c]
        if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
            raise ValueError("must be a list of category codes such as ['S6', 'S7'] or 'S6,S7'")
        return frozenset(value)

    @field_validator("custom_categories", mode="before")
    @classmethod
    def _as_custom(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return tuple(CustomCategory(code=k, description=v) for k, v in value.items())
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ValueError("must be a dict {'S15': 'Description.'} or a list of CustomCategory")
        return tuple(value)

    @model_validator(mode="after")
    def _known_codes(self) -> Policy:
        custom_codes = [c.code for c in self.custom_categories]
        if len(set(custom_codes)) != len(custom_codes):
            raise ValueError(f"custom category codes repeat: {custom_codes}")
        known = set(LLAMA_GUARD_4_CATEGORIES) | set(custom_codes)
        unknown = sorted(set(self.excluded_categories) - known)
        if unknown:
            raise ValueError(
                f"unknown category code(s) {unknown} in excluded_categories; known codes are S1-S14"
                + (f" and {custom_codes}" if custom_codes else "")
            )
        if self.review_threshold is not None and not self.review_threshold < self.threshold:
            raise ValueError(
                f"review_threshold ({self.review_threshold}) must be below threshold ({self.threshold}): "
                "the grey zone for review is review_threshold <= p < threshold"
            )
        if not self.categories(has_images=False):
            raise ValueError("every category is excluded: nothing would ever be checked")
        return self

    def categories(self, *, has_images: bool) -> dict[str, str]:
        """The category lines shown to the model, in order (S14 is dropped when images are present)."""
        lines = {
            code: text
            for code, text in LLAMA_GUARD_4_CATEGORIES.items()
            if code not in self.excluded_categories and not (has_images and code == CODE_INTERPRETER_ABUSE)
        }
        for custom in self.custom_categories:
            if custom.code not in self.excluded_categories:
                lines[custom.code] = custom.description
        return lines

    @property
    def custom_names(self) -> dict[str, str]:
        return {c.code: c.description for c in self.custom_categories}


@contextlib.contextmanager
def _policy_errors() -> Iterator[None]:
    """Pydantic's ``ValidationError`` raised inside, as one :class:`InvalidPolicyError` (see :func:`_invalid`)."""
    try:
        yield
    except ValidationError as exc:
        raise _invalid(exc) from exc


def _invalid(exc: ValidationError) -> InvalidPolicyError:
    """One typed error naming every bad setting (an error our own ``__init__`` raised inside pydantic's
    validation, e.g. from ``model_validate``, is passed on as it is)."""
    errors = exc.errors()
    inner = [err.get("ctx", {}).get("error") for err in errors]
    if inner and all(isinstance(e, InvalidPolicyError) for e in inner):
        return InvalidPolicyError("; ".join(str(e) for e in inner))
    problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}" for err in errors)
    return InvalidPolicyError(f"invalid policy: {problems}")


DEFAULT_POLICY = Policy()
