"""The typed result of one check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Verdict(BaseModel):
    """What Llama Guard 4 decided about the last message of a conversation.

    ``unsafe_probability`` is the model's probability that its answer is ``unsafe`` (from the
    answer-token distribution). ``error`` is set when the guard could not decide; the verdict then
    follows the policy's fail mode (closed: unsafe with probability 1.0; open: safe with 0.0).
    """

    model_config = ConfigDict(frozen=True)

    safe: bool
    categories: list[str] = Field(default_factory=list, description="violated category codes, e.g. ['S9']")
    category_names: list[str] = Field(default_factory=list)
    unsafe_probability: float = Field(ge=0.0, le=1.0)
    threshold: float = 0.5
    checked_role: Literal["User", "Agent"] = "User"
    checked_message_index: int = -1
    raw_output: str = ""
    latency_ms: float = 0.0
    error: str | None = Field(
        default=None,
        description="why the guard could not decide, for logs and operators (never the model's output: that is in "
        "raw_output); conversation-facing text uses error_code only",
    )
    error_code: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="the error's kind, an identifier (e.g. 'ModelOutputError', 'GuardTimeoutError')",
    )
    ignored_categories: list[str] = Field(default_factory=list, description="codes the policy excludes")
    omitted_messages: list[int] = Field(
        default_factory=list,
        description="older messages left out of the last message's context to fit max_prompt_tokens; each was "
        "classified in its own history windows (never unchecked)",
    )
    windows: int = Field(default=1, description="windows the last message was classified in (>1: it was split)")
    history_windows: int = Field(default=0, description="windows that classified the omitted messages")
    cached: bool = False
    prompt_tokens: int = Field(default=0, description="tokens the model read (every window)")
    kv_reused_tokens: int = Field(
        default=0, exclude=True, description="of prompt_tokens, those whose KV was reused from the backend's cache"
    )
    needs_review: bool = Field(default=False, description="in the policy's grey zone: a human should decide")
    review_threshold: float | None = None
    languages: list[str] = Field(default_factory=list, description="ISO 639-1 codes of the checked message")
    out_of_depth: list[str] = Field(default_factory=list, description="why the verdict should not be trusted")

    @property
    def unsafe(self) -> bool:
        return not self.safe

    @property
    def outcome(self) -> Literal["allow", "review", "block"]:
        """What the guard decided: let it through, ask a human, or block."""
        if not self.safe:
            return "block"
        return "review" if self.needs_review else "allow"

    @property
    def trusted(self) -> bool:
        """False when the model is out of its depth (an unsupported language, more images than tested)."""
        return not self.out_of_depth

    @property
    def status(self) -> Literal["safe", "unsafe", "error"]:
        if self.error is not None:
            return "error"
        return "safe" if self.safe else "unsafe"

    def summary(self) -> str:
        """One line with codes, fixed names and numbers only (it may be shown to a model: see ``tool_refusal``)."""
        if self.error is not None:
            return f"{'blocked' if not self.safe else 'passed (fail-open)'}: guard error: {self.error_code or 'GuardError'}"
        if self.safe and not self.needs_review:
            return f"safe (p_unsafe={self.unsafe_probability:.3f})"
        if not self.categories and self.out_of_depth:
            return f"{'needs review' if self.safe else 'unsafe'}: {'; '.join(self.out_of_depth)}"
        if self.safe:
            cats = ", ".join(f"{c} {n}" for c, n in zip(self.categories, self.category_names))
            return f"needs review: {cats or 'no category'} (p_unsafe={self.unsafe_probability:.3f})"
        cats = ", ".join(f"{c} {n}" for c, n in zip(self.categories, self.category_names))
        return f"unsafe: {cats} (p_unsafe={self.unsafe_probability:.3f})"
