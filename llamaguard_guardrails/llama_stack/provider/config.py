"""Configuration of the Llama Stack safety provider (the ``config:`` block of the run config)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...core.images import ImageLimits
from ...core.policy import Policy

#: The keys a shield may set in ``params`` when it is registered, each overriding the provider default: every
#: field of :class:`~llamaguard_guardrails.Policy` (so a new policy setting cannot be left out here).
SHIELD_PARAM_KEYS = tuple(Policy.model_fields)

DEFAULT_USER_MESSAGE = "I can't help with that: the message was flagged by the Llama Guard 4 safety shield."
ERROR_USER_MESSAGE = "The safety check could not be completed, so the message was blocked."


class LlamaGuardProviderConfig(BaseModel):
    """Provider config: which model to load once per provider, and the default policy of its shields.

    The model is loaded from ``model`` (a local folder or a Hugging Face id) with ``device`` /
    ``dtype`` / ``quantization``. The fields named as :class:`~llamaguard_guardrails.Policy`'s
    (``excluded_categories``, ``custom_categories``, ``threshold``, ``fail_mode``, ``timeout_s``,
    ``review_threshold``, ``out_of_depth``) form the default policy; a shield's ``params`` override them. A shield
    cannot pause for a human: a verdict in the grey zone is refused, with ``metadata["outcome"] == "review"`` so
    the application can route it to one.
    What one request may cost is bounded (:mod:`.limits`): ``max_inputs`` moderation inputs, ``max_request_chars``
    characters of text, ``max_pending`` checks at once and ``max_timeout_s`` per check.
    ``prefix_caching``, ``cache_conversations`` and ``prefix_cache_mb`` set the KV reuse (see
    ``LlamaGuard.from_pretrained``). ``allow_local_image_paths`` (default off) lets clients name
    image files on the server's disk; leave it off unless every client is trusted. ``image_limits`` bounds
    what one conversation's images may cost (``ImageLimits`` fields).
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="meta-llama/Llama-Guard-4-12B", description="local folder or Hugging Face model id")
    device: str | None = Field(default=None, description="'cuda', 'cuda:1', 'cpu'; default: CUDA when available")
    dtype: str | None = Field(default=None, description="'bfloat16', 'float16', 'float32'; default by device")
    quantization: Literal["8bit", "4bit"] | None = None
    local_files_only: bool | None = Field(default=None, description="never download (default: HF_HUB_OFFLINE)")
    max_prompt_tokens: int = Field(default=8192, gt=0)
    prefix_caching: bool | None = Field(default=None, description="reuse cached KV; default: on for CPU, off for GPU")
    cache_conversations: bool = Field(
        default=True, description="reuse the KV of conversations, not only the policy (False: no timing side channel)"
    )
    prefix_cache_mb: float = Field(default=512, gt=0, description="bound of the reused KV, in megabytes")
    load_on_startup: bool = Field(default=True, description="load at server start (else on the first check)")
    allow_local_image_paths: bool = Field(
        default=False,
        description="open image path strings and file:// URLs on the server's disk (only when every client is "
        "trusted); off: images must be data URLs or base64",
    )
    image_limits: dict[str, int] = Field(
        default_factory=dict,
        description="what one conversation's images may cost (ImageLimits fields: max_images, max_pixels, "
        "max_total_pixels, max_bytes); unset fields keep the defaults",
    )
    excluded_categories: list[str] = Field(default_factory=list)
    custom_categories: dict[str, str] = Field(default_factory=dict, description='e.g. {"S15": "Medical Advice."}')
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    fail_mode: Literal["closed", "open"] = "closed"
    timeout_s: float | None = Field(default=None, gt=0)
    review_threshold: float | None = Field(default=None, ge=0.0, lt=1.0, description="grey zone for a human")
    out_of_depth: Literal["allow", "review", "block"] = "allow"
    max_inputs: int = Field(default=64, ge=1, description="inputs of one moderations request")
    max_request_chars: int = Field(
        default=16 * 2**20,
        ge=1,
        description="characters of every string of one request together (its messages, data URLs included, or "
        "its moderation inputs)",
    )
    max_pending: int = Field(default=512, ge=1, description="checks admitted at once, running or queued (else 429)")
    max_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="deadline of every check; timeout_s (the provider's or a shield's) may be shorter, never longer",
    )
    user_message: str = DEFAULT_USER_MESSAGE
    error_user_message: str = ERROR_USER_MESSAGE

    @field_validator("excluded_categories", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()]
        return value

    @field_validator("image_limits")
    @classmethod
    def _image_limits(cls, value: dict[str, int]) -> dict[str, int]:
        try:
            ImageLimits(**value)
        except TypeError as exc:
            raise ValueError(f"image_limits takes {', '.join(ImageLimits.__dataclass_fields__)}: {exc}") from exc
        return value

    @field_validator("threshold", "timeout_s", "review_threshold", "max_timeout_s", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        """``threshold: true`` is not 1.0 (strings from ``${env.X}`` substitution are still read as numbers)."""
        if isinstance(value, bool):
            raise ValueError("must be a number, not a bool")
        return value

    @field_validator("custom_categories", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    def policy(self) -> Policy:
        """The provider's default policy (raises ``InvalidPolicyError`` naming the bad setting)."""
        return Policy(**{name: getattr(self, name) for name in Policy.model_fields})

    @classmethod
    def sample_run_config(cls, __distro_dir__: str = "", **kwargs: Any) -> dict[str, Any]:
        """The ``config:`` block written by Llama Stack tooling."""
        return {
            "model": "${env.LLAMAGUARD_MODEL:=meta-llama/Llama-Guard-4-12B}",
            "device": "${env.LLAMAGUARD_DEVICE:=}",
            "dtype": "${env.LLAMAGUARD_DTYPE:=}",
            "excluded_categories": [],
            "threshold": 0.5,
            "fail_mode": "closed",
        }


def shield_policy(default: Policy, params: dict[str, Any] | None) -> Policy:
    """The policy of one shield: the provider default with the shield's ``params`` applied.

    Unknown keys and invalid values raise ``ValueError`` (``InvalidPolicyError``) naming what to fix,
    so a bad shield is refused at registration.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(SHIELD_PARAM_KEYS))
    if unknown:
        raise ValueError(f"unknown shield param(s) {unknown}; supported: {list(SHIELD_PARAM_KEYS)}")
    if not params:
        return default
    settings = default.model_dump()
    settings.update({k: v for k, v in params.items() if v is not None})
    return Policy(**settings)
