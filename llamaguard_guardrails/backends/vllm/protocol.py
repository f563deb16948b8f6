"""What is sent to vLLM and how its answer is read: token-id prompts in, answer-token log probabilities out.

Shared by the HTTP client (:mod:`.http`) and the in-process engine (:mod:`.engine`); docs/vllm.md
explains the requests and why a token missing from the top K is read on the cautious side.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...core.errors import GuardError, ModelOutputError
from ...core.prompt import Prompt
from ...core.scores import AnswerScores
from ..base import AnswerTokens

#: K, the number of top log probabilities asked for: vLLM's default ``--max-logprobs``.
DEFAULT_TOP_LOGPROBS = 20
TOKEN_ID_PREFIX = "token_id:"


class VLLMError(GuardError):
    """The vLLM server could not answer a check (the core applies the policy's fail mode)."""


class VLLMConnectionError(VLLMError, ConnectionError):
    """The server could not be reached (after retries)."""


class VLLMHTTPError(VLLMError):
    """The server answered with an HTTP error (after retries, for retryable statuses)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class VLLMResponseError(VLLMError, ModelOutputError):
    """The server's answer is not a well-formed completion with the log probabilities asked for."""


class VLLMImagesNotSupportedError(VLLMError, NotImplementedError):
    """The prompt holds images, which this backend cannot send token-identically."""


# -- requests ---------------------------------------------------------------------------------------


def refuse_images(prompts: Sequence[Prompt]) -> None:
    """Raise :class:`VLLMImagesNotSupportedError` for a prompt with images (the fail mode blocks it)."""
    if any(p.has_images for p in prompts):
        raise VLLMImagesNotSupportedError(
            "the vLLM backend cannot send image prompts token-identically (/v1/completions takes no pixels, the "
            "chat route re-tokenizes text); check conversations with images with LlamaGuard.from_pretrained"
        )


def scoring_prompts(prompts: Sequence[Prompt], tokens: AnswerTokens) -> list[list[int]]:
    """Two token-id prompts for each prompt: its ids (first answer position) and ids + ``"\\n\\n"``."""
    refuse_images(prompts)
    return [ids for p in prompts for ids in (list(p.input_ids), [*p.input_ids, tokens.blank])]


def scoring_params(top_logprobs: int) -> dict[str, Any]:
    """Sampling parameters of the scoring pass: one greedy token and its top-K log probabilities."""
    return {"max_tokens": 1, "temperature": 0.0, "logprobs": top_logprobs}


def category_prompt(prompt: Prompt, tokens: AnswerTokens, *, leading_blank: bool) -> list[int]:
    """The prompt's ids followed by a forced ``unsafe\\n`` (after ``"\\n\\n"`` when the model leads with one)."""
    refuse_images([prompt])
    return [*prompt.input_ids, *([tokens.blank] if leading_blank else []), tokens.unsafe, tokens.newline]


def category_params(tokens: AnswerTokens, max_new_tokens: int) -> dict[str, Any]:
    """Sampling parameters of the category line: greedy up to a newline or ``<|eot|>``, no special tokens."""
    return {
        "max_tokens": max_new_tokens,
        "temperature": 0.0,
        "stop": ["\n"],
        "stop_token_ids": [tokens.eot, tokens.newline],
        "skip_special_tokens": True,
    }


# -- answers ----------------------------------------------------------------------------------------


def scores_from_logprobs(first: Mapping[int, float], after: Mapping[int, float], tokens: AnswerTokens) -> AnswerScores:
    """:class:`AnswerScores` from the top log probabilities at the two answer positions.

    ``first``: token id -> log probability at the first answer position; ``after``: the same after a
    leading ``"\\n\\n"``. A token missing from a list has a probability in ``[0, smallest listed]``;
    each missing value is set to the end of its interval that maximises ``unsafe_probability``
    (the cautious reading). Raises :class:`VLLMResponseError` when no listed path reaches ``safe``
    or ``unsafe``.
    """
    if not first:
        raise VLLMResponseError("no log probabilities at the first answer position")
    listed = {"first": first, "after": after}
    bounds = {name: (math.exp(min(d.values())) if d else 1.0) for name, d in listed.items()}
    wanted = {
        "p_safe": ("first", tokens.safe),
        "p_unsafe": ("first", tokens.unsafe),
        "p_blank": ("first", tokens.blank),
        "p_safe_after_blank": ("after", tokens.safe),
        "p_unsafe_after_blank": ("after", tokens.unsafe),
    }
    known: dict[str, float] = {}
    missing: dict[str, tuple[float, float]] = {}
    for field, (position, token_id) in wanted.items():
        if token_id in listed[position]:
            known[field] = math.exp(listed[position][token_id])
        else:
            missing[field] = (0.0, bounds[position])
    first_answer = "p_safe" in known or "p_unsafe" in known
    after_answer = "p_blank" in known and ("p_safe_after_blank" in known or "p_unsafe_after_blank" in known)
    if not (first_answer or after_answer):
        raise VLLMResponseError(
            f"the model's answer is neither 'safe' nor 'unsafe': neither token is among the top {len(first)} "
            "log probabilities"
        )
    corners = (AnswerScores(**known, **dict(zip(missing, c))) for c in itertools.product(*missing.values()))
    return max(corners, key=lambda s: s.unsafe_probability)


def paired_scores(tops: Sequence[Mapping[int, float]], tokens: AnswerTokens) -> list[AnswerScores]:
    """Scores of each prompt from the top log probabilities of its two :func:`scoring_prompts`, in order."""
    return [scores_from_logprobs(tops[n], tops[n + 1], tokens) for n in range(0, len(tops), 2)]


def token_logprobs(top: Any, strings: Mapping[str, int], where: str) -> dict[int, float]:
    """``{"token_id:60411": -0.1, ...}`` -> ``{60411: -0.1, ...}``.

    Servers without ``return_tokens_as_token_ids`` send token text as keys: ``strings`` maps the
    answer tokens' text to ids; other texts get negative placeholder ids, so they still count for
    the smallest listed probability but never match an answer token.
    """
    if not isinstance(top, dict):
        raise VLLMResponseError(f"{where}: top_logprobs entry is {type(top).__name__}, not an object")
    out: dict[int, float] = {}
    for n, (key, value) in enumerate(top.items()):
        if not isinstance(key, str):
            raise VLLMResponseError(f"{where}: top_logprobs key {key!r} is not a string")
        if key.startswith(TOKEN_ID_PREFIX):
            try:
                token_id = int(key[len(TOKEN_ID_PREFIX) :])
            except ValueError as exc:
                raise VLLMResponseError(f"{where}: bad token key {key!r}") from exc
        else:
            token_id = strings.get(key, -1 - n)
        out[token_id] = max(_finite_logprob(value, f"{where}[{key!r}]"), out.get(token_id, -math.inf))
    return out


def completion_logprobs(body: Any, count: int, strings: Mapping[str, int]) -> list[dict[int, float]]:
    """The first token's top log probabilities of each of the ``count`` choices of a completions body."""
    tops = []
    for index, choice in enumerate(completion_choices(body, count)):
        where = f"choices[{index}].logprobs"
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            raise VLLMResponseError(f"{where} is missing: the server did not return log probabilities")
        top = logprobs.get("top_logprobs")
        if not isinstance(top, list) or not top:
            raise VLLMResponseError(f"{where}.top_logprobs is missing or empty")
        tops.append(token_logprobs(top[0], strings, f"{where}.top_logprobs[0]"))
    return tops


def completion_text(body: Any) -> str:
    """The text of the single choice of a completions body (the category line)."""
    text = completion_choices(body, 1)[0].get("text")
    if not isinstance(text, str):
        raise VLLMResponseError("choices[0].text is missing from the category-line completion")
    return text


def completion_choices(body: Any, count: int) -> list[dict[str, Any]]:
    """The ``count`` choices of a completions body, in prompt order (by their ``index``)."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise VLLMResponseError("the response has no 'choices' list")
    choices = body["choices"]
    if len(choices) != count or not all(isinstance(c, dict) for c in choices):
        raise VLLMResponseError(f"expected {count} choices (one per prompt sent), got {len(choices)}")
    indices = [c.get("index", i) for i, c in enumerate(choices)]
    if sorted(indices) != list(range(count)):
        raise VLLMResponseError(f"choice indices {indices} are not 0..{count - 1}")
    return [c for _, c in sorted(zip(indices, choices), key=lambda ic: ic[0])]


def answer_token_strings(decode: Callable[[list[int]], str], tokens: AnswerTokens) -> dict[str, int]:
    """Text -> id of the answer tokens, for servers that return token text instead of ``token_id:N``."""
    return {decode([t]): t for t in (tokens.safe, tokens.unsafe, tokens.blank)}


def _finite_logprob(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value > 1e-4:
        raise VLLMResponseError(f"{where}: {value!r} is not a log probability")
    return min(float(value), 0.0)
