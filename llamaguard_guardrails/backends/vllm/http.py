"""The vLLM server backend: ``POST /v1/completions`` with retries, backoff and one deadline per call."""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ...core.errors import GuardTimeoutError, ModelNotFoundError
from ...core.prompt import Prompt
from ...core.scores import AnswerScores
from ..base import AnswerTokens, GuardBackend
from .protocol import (
    DEFAULT_TOP_LOGPROBS,
    VLLMConnectionError,
    VLLMHTTPError,
    VLLMResponseError,
    category_params,
    category_prompt,
    completion_logprobs,
    completion_text,
    paired_scores,
    scoring_params,
    scoring_prompts,
)

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 502, 503, 504})


class VLLMBackend(GuardBackend):
    """Scores prompts on a vLLM OpenAI-compatible server. Thread-safe; pooled connections.

    ``base_url``: the server, e.g. ``http://127.0.0.1:8000`` (a trailing ``/v1`` is accepted).
    ``model``: the served model name (``vllm serve M --served-model-name NAME``; defaults to M).
    ``timeout``: deadline in seconds for one call (one scoring batch or one category line), retries
    included. ``max_retries``: extra attempts on connection errors and HTTP 429/502/503/504.
    ``top_logprobs``: K, at most the server's ``--max-logprobs`` (20 by default).
    ``exact_logprobs``: also send ``logprob_token_ids`` for exact answer-token probabilities
    (vLLM releases that support it; others ignore it and the top-K reading applies).
    """

    name = "vllm"

    def __init__(
        self,
        base_url: str,
        model: str,
        tokens: AnswerTokens,
        *,
        token_strings: Mapping[str, int] | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_retries: int = 3,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        top_logprobs: int = DEFAULT_TOP_LOGPROBS,
        exact_logprobs: bool = False,
        max_connections: int = 64,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive")
        if max_retries < 0 or top_logprobs < 1:
            raise ValueError("max_retries must be >= 0 and top_logprobs >= 1")
        url = base_url.rstrip("/")
        self.base_url = url[: -len("/v1")] if url.endswith("/v1") else url
        self.model = model
        self.tokens = tokens
        # Servers that cannot return token ids send token text: map the answer tokens' text to ids.
        self.token_strings = dict(token_strings or {})
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.top_logprobs = top_logprobs
        self.exact_logprobs = exact_logprobs
        sent = {"User-Agent": "llamaguard-guardrails", **(headers or {})}
        api_key = api_key if api_key is not None else os.environ.get("VLLM_API_KEY")
        if api_key:
            sent["Authorization"] = f"Bearer {api_key}"
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(base_url=self.base_url, headers=sent, limits=limits)

    def __repr__(self) -> str:
        return f"VLLMBackend({self.base_url!r}, model={self.model!r})"

    # -- requests and answers ---------------------------------------------------------------------

    def score_payload(self, prompts: Sequence[Prompt]) -> dict[str, Any]:
        """The ``/v1/completions`` body that scores ``prompts`` (two token-id prompts each)."""
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": scoring_prompts(prompts, self.tokens),
            **scoring_params(self.top_logprobs),
            "return_tokens_as_token_ids": True,
        }
        if self.exact_logprobs:
            payload["logprob_token_ids"] = [self.tokens.safe, self.tokens.unsafe, self.tokens.blank]
        return payload

    def category_payload(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int) -> dict[str, Any]:
        """The ``/v1/completions`` body that decodes the category line after a forced ``unsafe\\n``."""
        return {
            "model": self.model,
            "prompt": category_prompt(prompt, self.tokens, leading_blank=leading_blank),
            **category_params(self.tokens, max_new_tokens),
        }

    def parse_scores(self, body: Any, count: int) -> list[AnswerScores]:
        """AnswerScores for ``count`` prompts from a ``/v1/completions`` response body."""
        return paired_scores(completion_logprobs(body, 2 * count, self.token_strings), self.tokens)

    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        if not prompts:
            return []
        return self.parse_scores(self._post(self.score_payload(prompts), "scoring"), len(prompts))

    def category_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        payload = self.category_payload(prompt, leading_blank=leading_blank, max_new_tokens=max_new_tokens)
        return completion_text(self._post(payload, "category line"))

    def _post(self, payload: dict[str, Any], what: str) -> Any:
        attempts = _Attempts(self, what)
        while True:
            try:
                response = self._client.post("/v1/completions", json=payload, timeout=attempts.timeout())
            except httpx.HTTPError as exc:
                time.sleep(attempts.retry_delay(error=exc))
                continue
            if response.status_code in RETRY_STATUS:
                time.sleep(attempts.retry_delay(response=response))
                continue
            return _json_body(response, what)

    # -- checks and lifecycle ---------------------------------------------------------------------

    def verify(self) -> None:
        """Check that the server serves ``model`` and tokenizes the answer tokens like the prompt builder.

        Raises :class:`ModelNotFoundError` (model not served, tokenizer mismatch) or :class:`VLLMError`.
        A server without the ``/tokenize`` endpoint skips the tokenizer check (logged).
        """
        body = self._get_json("/v1/models")
        served = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)] if isinstance(body, dict) else []
        if self.model not in served:
            raise ModelNotFoundError(
                f"the vLLM server at {self.base_url} does not serve {self.model!r} (it serves {served}); pass "
                "model= the name given to `vllm serve` (or its --served-model-name)"
            )
        expected = {"unsafe": self.tokens.unsafe, "\n\n": self.tokens.blank}
        for text, token_id in expected.items():
            try:
                response = self._client.post(
                    "/tokenize",
                    json={"model": self.model, "prompt": text, "add_special_tokens": False},
                    timeout=self.connect_timeout + self.timeout,
                )
            except httpx.HTTPError as exc:
                raise VLLMConnectionError(f"vLLM server at {self.base_url}: {exc}") from exc
            if response.status_code == 404:
                log.warning("vLLM server has no /tokenize endpoint: tokenizer agreement not checked")
                return
            tokens = _json_body(response, "tokenize").get("tokens")
            if tokens != [token_id]:
                raise ModelNotFoundError(
                    f"the server tokenizes {text!r} as {tokens}, the prompt builder as [{token_id}]: the tokenizer "
                    "given to from_vllm is not the served model's"
                )

    def _get_json(self, path: str) -> Any:
        try:
            response = self._client.get(path, timeout=self.connect_timeout + self.timeout)
        except httpx.HTTPError as exc:
            raise VLLMConnectionError(f"vLLM server at {self.base_url} is not reachable: {exc}") from exc
        return _json_body(response, path)

    def close(self) -> None:
        self._client.close()


class _Attempts:
    """Deadline and retry bookkeeping for one backend call."""

    def __init__(self, backend: VLLMBackend, what: str) -> None:
        self.backend = backend
        self.what = what
        self.deadline = time.monotonic() + backend.timeout
        self.attempt = 0

    def timeout(self) -> httpx.Timeout:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise GuardTimeoutError(f"vLLM {self.what}: no answer within the {self.backend.timeout} s deadline")
        return httpx.Timeout(remaining, connect=min(self.backend.connect_timeout, remaining))

    def retry_delay(self, *, error: Exception | None = None, response: httpx.Response | None = None) -> float:
        """Seconds to wait before the next attempt, or raise when this failure is final."""
        b = self.backend
        if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
            # Each attempt may use all the remaining time, so a read/write/pool timeout is the deadline.
            raise GuardTimeoutError(f"vLLM {self.what}: no answer within the {b.timeout} s deadline") from error
        if response is not None:
            problem = f"HTTP {response.status_code}: {_error_message(response)}"
        else:
            problem = f"{type(error).__name__}: {error}"
        self.attempt += 1
        if self.attempt > b.max_retries:
            message = f"vLLM {self.what} failed after {self.attempt} attempts at {b.base_url}: {problem}"
            if response is not None:
                raise VLLMHTTPError(message, response.status_code)
            raise VLLMConnectionError(message) from error
        delay = min(b.max_backoff_s, b.backoff_s * 2 ** (self.attempt - 1)) * random.uniform(0.5, 1.0)
        if response is not None and (retry_after := response.headers.get("retry-after")):
            try:
                delay = max(delay, min(float(retry_after), b.max_backoff_s))
            except ValueError:
                pass
        if time.monotonic() + delay >= self.deadline:
            raise GuardTimeoutError(
                f"vLLM {self.what}: deadline of {b.timeout} s reached while retrying ({problem})"
            ) from error
        log.info("vLLM %s: %s; retry %d/%d in %.2f s", self.what, problem, self.attempt, b.max_retries, delay)
        return delay


def _json_body(response: httpx.Response, what: str) -> Any:
    if response.status_code != 200:
        raise VLLMHTTPError(
            f"vLLM {what}: HTTP {response.status_code}: {_error_message(response)}", response.status_code
        )
    try:
        return response.json()
    except ValueError as exc:
        raise VLLMResponseError(f"vLLM {what}: the response is not JSON: {response.text[:120]!r}") from exc


def _error_message(response: httpx.Response) -> str:
    """vLLM's error text: ``{"error": {"message": ...}}`` (new) or ``{"message": ...}`` (old)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
        if "message" in body:
            return str(body["message"])[:300]
    return json.dumps(body)[:300]
