"""The request bodies the server accepts (unknown fields are refused: a typo never passes silently)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..core.policy import Policy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str = Field(description="a base64 data URL (data:image/png;base64,...); other URLs and paths are refused")


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ModerationRequest(_Strict):
    """OpenAI's ``POST /v1/moderations`` body: ``input`` is a string, a list of strings (one result each), or a
    list of content parts (one result for all of them: the images are checked with their text)."""

    input: str | list[str] | list[ContentPart]
    model: str | None = None


Conversation = str | list[dict[str, Any]]


class ClassifyRequest(_Strict):
    """``POST /v1/guard/classify``: one conversation (OpenAI-format messages, or a string), its last message checked.

    ``policy`` is the core's :class:`~llamaguard_guardrails.Policy` itself (every field, validated as strictly as in
    process: ``threshold: true`` or ``"0.5"`` is a 400, never 1.0 or 0.5), so no setting is lost on the way; the
    server caps ``timeout_s`` at its deadline and answers a failed check with an HTTP error (``fail_mode`` is the
    client's business)."""

    messages: Conversation
    policy: Policy | None = None
    model: str | None = None


class ClassifyBatchRequest(_Strict):
    """``POST /v1/guard/classify_batch``: several conversations under one policy, one verdict each."""

    conversations: list[Conversation]
    policy: Policy | None = None
    model: str | None = None
