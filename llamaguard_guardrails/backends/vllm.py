"""vLLM backend: Llama Guard 4 served by a vLLM OpenAI-compatible server (``vllm serve``).

The core builds the prompt as token ids exactly as for the in-process backend; this backend sends
those ids unchanged to ``POST /v1/completions`` (a token-id prompt is passed to the engine as is:
no re-tokenization, no chat template, no BOS added) and turns the answer-token log probabilities
into the same :class:`AnswerScores`.

**Scoring: one request per batch.** For each prompt ``p`` the request holds two token-id prompts,
``p`` and ``p + ["\\n\\n"]``, with ``max_tokens=1``, ``temperature=0``, ``logprobs=K`` (top log
probabilities of the first generated token, K=20 by default: vLLM's default ``--max-logprobs``) and
``return_tokens_as_token_ids=true`` (keys come back as ``"token_id:60411"``, so no string decoding
and no collisions between tokens that decode to the same text). The first prompt gives the
distribution at the first answer position, the second the distribution after a leading blank line:
the two positions the transformers backend reads from its single forward pass. The second prompt
shares the first one's whole prefix, so vLLM's automatic prefix caching serves most of its prefill
from cache. ``prompt_logprobs`` would give both positions from one prompt, but vLLM then computes and
returns top-K entries for *every* prompt position (the response grows with the prompt), so it costs
more.

**Tokens missing from the top K.** A token absent from the list has a probability between 0 and
the smallest listed one. The backend takes, for each missing token, whichever end of that interval
gives the *higher* ``unsafe_probability`` (missing ``unsafe`` counts as the smallest listed
probability, missing ``safe`` as 0), so a truncated list can only make a verdict more cautious;
the error is at most that smallest probability. With ``exact_logprobs=True`` the request also
carries ``logprob_token_ids=[safe, unsafe, "\\n\\n"]`` (newer vLLM releases; older ones ignore the
field) and the three probabilities come back exactly. When neither ``safe`` nor ``unsafe`` is listed
on any path, the answer is garbage: :class:`VLLMResponseError` is raised and the core applies the
policy's fail mode.

**Category line.** Only for unsafe verdicts, a second request: prompt + ``["unsafe", "\\n"]`` (after
``"\\n\\n"`` when the model leads with a blank line), greedy, ``max_tokens=24``, stopping at a newline
or ``<|eot|>``, special tokens skipped.

**Failures.** Connection errors and HTTP 429/502/503/504 are retried with exponential backoff
(honouring ``Retry-After``) up to ``max_retries`` times, all within ``timeout`` seconds for the whole
call. Everything else - the deadline passing, other HTTP errors, retries exhausted, a body that is
not JSON, missing logprobs, a wrong number of choices - raises a :class:`VLLMError` (or
:class:`GuardTimeoutError`), which the core turns into the fail-mode verdict: never "safe".

**Server.** ``vllm serve meta-llama/Llama-Guard-4-12B --max-logprobs 20`` (20 is the default) and a
release whose model registry has ``Llama4ForConditionalGeneration``. Which release serves Llama
Guard 4 (a dense Llama 4 with ``attention_chunk_size: null``) was NOT measured in this project yet:
no GPU machine with vLLM was available; ``scripts/vllm_parity.py`` measures it and the parity.
The request fields used - token-id prompts, ``logprobs``, ``stop_token_ids``,
``skip_special_tokens``, ``return_tokens_as_token_ids`` - are documented vLLM completion parameters;
a server that ignores ``return_tokens_as_token_ids`` sends token text, which is mapped back too.

**Images are not supported by this backend.** The core's image prompts hold pre-expanded image
tokens plus pixel tiles; ``/v1/completions`` takes no pixel data, and vLLM's chat route re-renders
and re-tokenizes text (a ``<|eot|>`` typed by a user would become a control token), so no request
can carry the core's exact image prompt. A conversation with images raises
:class:`VLLMImagesNotSupportedError` (a ``NotImplementedError``): with ``fail_mode="closed"`` it is
blocked with that error, never passed. Check image conversations with the transformers backend.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..core.errors import GuardError, GuardTimeoutError, ModelNotFoundError, ModelOutputError
from ..core.prompt import EOT, Prompt
from .base import AnswerScores, AnswerTokens, GuardBackend

if TYPE_CHECKING:
    from ..core.policy import Policy
    from ..guard import LlamaGuard, VerdictSink

log = logging.getLogger(__name__)

DEFAULT_TOP_LOGPROBS = 20
RETRY_STATUS = frozenset({429, 502, 503, 504})
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


# -- log probabilities -> AnswerScores --------------------------------------------------------------


def _finite_logprob(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value > 1e-4:
        raise VLLMResponseError(f"{where}: {value!r} is not a log probability")
    return min(float(value), 0.0)


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
    best: AnswerScores | None = None
    for corner in itertools.product(*missing.values()):
        candidate = AnswerScores(**known, **dict(zip(missing, corner)))
        if best is None or candidate.unsafe_probability > best.unsafe_probability:
            best = candidate
    assert best is not None
    return best


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
        self._headers = {"User-Agent": "llamaguard-guardrails", **(headers or {})}
        api_key = api_key if api_key is not None else os.environ.get("VLLM_API_KEY")
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(base_url=self.base_url, headers=self._headers, limits=self._limits)
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VLLMBackend({self.base_url!r}, model={self.model!r})"

    # -- requests ---------------------------------------------------------------------------------

    def score_payload(self, prompts: Sequence[Prompt]) -> dict[str, Any]:
        """The ``/v1/completions`` body that scores ``prompts`` (two token-id prompts each)."""
        _refuse_images(prompts)
        t = self.tokens
        ids: list[list[int]] = []
        for prompt in prompts:
            ids.append(list(prompt.input_ids))
            ids.append([*prompt.input_ids, t.blank])
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": ids,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": self.top_logprobs,
            "return_tokens_as_token_ids": True,
        }
        if self.exact_logprobs:
            payload["logprob_token_ids"] = [t.safe, t.unsafe, t.blank]
        return payload

    def category_payload(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int) -> dict[str, Any]:
        """The ``/v1/completions`` body that decodes the category line after a forced ``unsafe\\n``."""
        _refuse_images([prompt])
        t = self.tokens
        forced = ([t.blank] if leading_blank else []) + [t.unsafe, t.newline]
        return {
            "model": self.model,
            "prompt": [*prompt.input_ids, *forced],
            "max_tokens": max_new_tokens,
            "temperature": 0,
            "stop": ["\n"],
            "stop_token_ids": [t.eot, t.newline],
            "skip_special_tokens": True,
        }

    def parse_scores(self, body: Any, count: int) -> list[AnswerScores]:
        """AnswerScores for ``count`` prompts from a ``/v1/completions`` response body."""
        choices = _choices(body, 2 * count)
        out = []
        for n in range(count):
            first = self._top(choices[2 * n], 2 * n)
            after = self._top(choices[2 * n + 1], 2 * n + 1)
            out.append(scores_from_logprobs(first, after, self.tokens))
        return out

    def _top(self, choice: dict[str, Any], index: int) -> dict[int, float]:
        where = f"choices[{index}].logprobs"
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            raise VLLMResponseError(f"{where} is missing: the server did not return log probabilities")
        top = logprobs.get("top_logprobs")
        if not isinstance(top, list) or not top:
            raise VLLMResponseError(f"{where}.top_logprobs is missing or empty")
        return token_logprobs(top[0], self.token_strings, f"{where}.top_logprobs[0]")

    @staticmethod
    def parse_text(body: Any) -> str:
        text = _choices(body, 1)[0].get("text")
        if not isinstance(text, str):
            raise VLLMResponseError("choices[0].text is missing from the category-line completion")
        return text

    # -- sync -------------------------------------------------------------------------------------

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

    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        if not prompts:
            return []
        return self.parse_scores(self._post(self.score_payload(prompts), "scoring"), len(prompts))

    def category_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        payload = self.category_payload(prompt, leading_blank=leading_blank, max_new_tokens=max_new_tokens)
        return self.parse_text(self._post(payload, "category line"))

    # -- async ------------------------------------------------------------------------------------

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None or client.is_closed:
                client = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, limits=self._limits)
                self._async_clients[loop] = client
            return client

    async def _apost(self, payload: dict[str, Any], what: str) -> Any:
        attempts = _Attempts(self, what)
        client = self._async_client()
        while True:
            try:
                response = await client.post("/v1/completions", json=payload, timeout=attempts.timeout())
            except httpx.HTTPError as exc:
                await asyncio.sleep(attempts.retry_delay(error=exc))
                continue
            if response.status_code in RETRY_STATUS:
                await asyncio.sleep(attempts.retry_delay(response=response))
                continue
            return _json_body(response, what)

    async def ascore(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        if not prompts:
            return []
        return self.parse_scores(await self._apost(self.score_payload(prompts), "scoring"), len(prompts))

    async def acategory_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        payload = self.category_payload(prompt, leading_blank=leading_blank, max_new_tokens=max_new_tokens)
        return self.parse_text(await self._apost(payload, "category line"))

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

    async def aclose(self) -> None:
        """Close this event loop's async connection pool (and the sync one)."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.pop(loop, None)
        if client is not None:
            await client.aclose()
        self.close()


def _refuse_images(prompts: Sequence[Prompt]) -> None:
    if any(p.has_images for p in prompts):
        raise VLLMImagesNotSupportedError(
            "the vLLM backend cannot send image prompts token-identically (/v1/completions takes no pixels, the "
            "chat route re-tokenizes text); check conversations with images with LlamaGuard.from_pretrained"
        )


def _json_body(response: httpx.Response, what: str) -> Any:
    if response.status_code != 200:
        raise VLLMHTTPError(
            f"vLLM {what}: HTTP {response.status_code}: {_error_message(response)}", response.status_code
        )
    try:
        return response.json()
    except ValueError as exc:
        raise VLLMResponseError(f"vLLM {what}: the response is not JSON: {response.text[:120]!r}") from exc


def _choices(body: Any, count: int) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise VLLMResponseError("the response has no 'choices' list")
    choices = body["choices"]
    if len(choices) != count or not all(isinstance(c, dict) for c in choices):
        raise VLLMResponseError(f"expected {count} choices (one per prompt sent), got {len(choices)}")
    indices = [c.get("index", i) for i, c in enumerate(choices)]
    if sorted(indices) != list(range(count)):
        raise VLLMResponseError(f"choice indices {indices} are not 0..{count - 1}")
    return [c for _, c in sorted(zip(indices, choices), key=lambda ic: ic[0])]


def answer_token_strings(decode, tokens: AnswerTokens) -> dict[str, int]:
    """Text -> id of the answer tokens, for servers that return token text instead of ``token_id:N``."""
    return {
        decode([tokens.safe]): tokens.safe,
        decode([tokens.unsafe]): tokens.unsafe,
        decode([tokens.blank]): tokens.blank,
    }


def from_vllm(
    base_url: str,
    model: str = "meta-llama/Llama-Guard-4-12B",
    *,
    tokenizer: str | os.PathLike[str] | None = None,
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
    verify: bool = True,
    policy: Policy | None = None,
    max_prompt_tokens: int | None = None,
    sink: VerdictSink | None = None,
    **guard_options: Any,
) -> LlamaGuard:
    """A :class:`LlamaGuard` whose model step runs on a vLLM server.

    ``model``: the served model name. ``tokenizer``: a local folder or Hugging Face id holding the
    checkpoint's tokenizer and processor (no weights are loaded); defaults to ``model``. The prompt
    is built locally exactly as for :meth:`LlamaGuard.from_pretrained`. ``verify`` checks at once
    that the server serves ``model`` with the same tokenizer. The connection options are
    :class:`VLLMBackend`'s; ``guard_options`` go to the :class:`LlamaGuard` constructor
    (``cache_size``, ``batch_size``, ...).

    >>> guard = from_vllm("http://127.0.0.1:8000", model="meta-llama/Llama-Guard-4-12B")  # doctest: +SKIP
    """
    from ..guard import DEFAULT_MAX_PROMPT_TOKENS, LlamaGuard, load_prompt_builder
    from ..testing.model_factory import TEST_MODEL_MARKER

    source = tokenizer if tokenizer is not None else model
    builder = load_prompt_builder(source)
    tokens = AnswerTokens.from_tokenizer(builder.encode_text, builder.ids[EOT])
    backend = VLLMBackend(
        base_url,
        model,
        tokens,
        token_strings=answer_token_strings(builder.decode, tokens),
        api_key=api_key,
        timeout=timeout,
        connect_timeout=connect_timeout,
        max_retries=max_retries,
        backoff_s=backoff_s,
        max_backoff_s=max_backoff_s,
        top_logprobs=top_logprobs,
        exact_logprobs=exact_logprobs,
        max_connections=max_connections,
        headers=headers,
    )
    if verify:
        try:
            backend.verify()
        except BaseException:
            backend.close()
            raise
    guard = LlamaGuard(
        backend,
        builder,
        policy=policy,
        max_prompt_tokens=max_prompt_tokens or DEFAULT_MAX_PROMPT_TOKENS,
        sink=sink,
        model_name=f"vllm:{model}",
        **guard_options,
    )
    guard.is_test_model = Path(source, f"{TEST_MODEL_MARKER}.json").exists()
    return guard


__all__ = [
    "VLLMBackend",
    "VLLMConnectionError",
    "VLLMError",
    "VLLMHTTPError",
    "VLLMImagesNotSupportedError",
    "VLLMResponseError",
    "answer_token_strings",
    "from_vllm",
    "scores_from_logprobs",
    "token_logprobs",
]
