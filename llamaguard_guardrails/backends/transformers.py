"""In-process backend: ``Llama4ForConditionalGeneration`` from transformers."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import ModelNotFoundError
from ..core.prompt import Prompt
from .base import AnswerScores, AnswerTokens, GuardBackend

log = logging.getLogger(__name__)

# Llama Guard 4 ships `attention_chunk_size: null`, which transformers cannot run. With 8192, logits
# equal full attention for prompts below 8192 tokens.
ATTENTION_CHUNK_SIZE = 8192
#: In a batch, a prompt leaves the shared policy-prefix pass for a pass of its own only when its cached
#: conversation spares it at least this many tokens.
PRIVATE_REUSE_TOKENS = 64
#: ``compile=``: None (eager), "cuda_graphs" (static buffers; captured in CUDA graphs on a GPU, run as they are on
#: CPU), or a ``torch.compile`` mode for the static path's steps.
COMPILE_OPTIONS = (None, "cuda_graphs", "default", "reduce-overhead", "max-autotune")

ACCESS_HELP = (
    "Llama Guard 4 is a gated model. To get it: accept the Llama 4 Community License at "
    "https://huggingface.co/meta-llama/Llama-Guard-4-12B, log in with `hf auth login`, then "
    "`hf download meta-llama/Llama-Guard-4-12B` (24 GB; a GPU with >= 32 GB for bf16, or 8-/4-bit "
    "with the `quantization` extra). Or pass a local folder that holds the checkpoint. For tests and "
    "demos, `llamaguard-guardrails make-test-model DIR` writes a small random-weight stand-in."
)


class TransformersBackend(GuardBackend):
    """Scores prompts with one forward pass; decodes categories greedily only when asked.

    With ``prefix_caching``, a check pays only for the tokens after the longest prompt beginning whose KV
    cache it has kept (``kv_store``): the policy part of every prompt and, with ``cache_conversations``, the
    conversation so far, for the next turn of an agent or the next window of a stream. Bounded by
    ``max_cached_prefixes`` entries and ``prefix_cache_mb`` megabytes.

    Reusing a conversation changes the float summation order, so a repeated check may differ from the first in
    the 7th digit of its probability (as batching does). ``cache_conversations=False`` reuses only the policy
    part, always at the same place: repeats are then bit-identical.

    ``compile="cuda_graphs"`` runs text passes on static buffers in length buckets (``graphs.py``), captured in
    CUDA graphs on a GPU, so a short check replays one graph instead of launching ~2,300 kernels; a torch.compile
    mode (``"reduce-overhead"``, ...) compiles those steps instead. ``warmup`` prepares the usual buckets.
    """

    name = "transformers"

    def __init__(
        self,
        model: Any,
        answer_tokens: AnswerTokens,
        pad_token_id: int,
        decode,
        *,
        prefix_caching: bool | None = None,
        cache_conversations: bool = True,
        max_cached_prefixes: int = 16,
        prefix_cache_mb: float = 512,
        compile: str | None = None,
    ) -> None:
        import torch

        from .kv_store import PrefixKVStore

        if compile not in COMPILE_OPTIONS:
            raise ValueError(f"compile must be one of {', '.join(map(repr, COMPILE_OPTIONS))}, got {compile!r}")

        self.model = model
        self.tokens = answer_tokens
        self.pad_token_id = pad_token_id
        self._decode = decode
        self._lock = threading.Lock()
        self._torch = torch
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        # Default on CPU, off on GPUs until a GPU run says otherwise (README, Performance).
        self.prefix_caching = self.device.type == "cpu" if prefix_caching is None else prefix_caching
        self.cache_conversations = cache_conversations
        self.kv_store = PrefixKVStore(max_entries=max_cached_prefixes, max_bytes=int(prefix_cache_mb * 2**20))
        self._window: int | None = None  # longest prompt the model's cache keeps whole (chunked attention)
        self.warmup_s: float | None = None
        self.graphs = None
        if compile is not None:
            from .graphs import GraphScorer

            wanted = [answer_tokens.safe, answer_tokens.unsafe, answer_tokens.blank]
            self.graphs = GraphScorer(model, wanted, compile_mode=None if compile == "cuda_graphs" else compile)

    def _pixels(self, prompts: Sequence[Prompt], start: int = 0) -> Any:
        """The pixel tiles of the images whose tokens the pass runs (those at or after position ``start``)."""
        tiles = []
        for prompt in prompts:
            if prompt.pixel_values is None:
                continue
            first = sum(n for (begin, _), n in zip(prompt.image_spans, prompt.image_tiles) if begin < start)
            if first < len(prompt.pixel_values):
                tiles.append(prompt.pixel_values[first:])
        if not tiles:
            return None
        return self._torch.cat(tiles).to(self.device, self.dtype)

    # -- prefix reuse ----------------------------------------------------------------------------

    def _anchor(self, prompt: Prompt) -> int:
        """Length of the policy prefix under which this prompt may reuse cached KV; 0: no reuse."""
        if not self.prefix_caching or not 0 < prompt.prefix_length < len(prompt.input_ids):
            return 0
        if self._window is not None and len(prompt.input_ids) + 1 > self._window:
            return 0
        return prompt.prefix_length

    def _reuse(self, prompt: Prompt) -> tuple[Any, int]:
        """(entry, length): cached KV for the first ``length`` ids of the prompt; (None, 0) without reuse."""
        from .forward import hidden_states
        from .kv_store import KVEntry, supports, window_limit

        anchor = self._anchor(prompt)
        if not anchor:
            return None, 0
        entry, length = self.kv_store.longest(prompt.input_ids, anchor, _images(prompt))
        if entry is not None:
            return entry, length if self.cache_conversations else anchor
        ids = prompt.input_ids[:anchor]
        _, cache = hidden_states(self.model, self._torch.tensor([ids], device=self.device), use_cache=True)
        if not supports(cache):
            log.info("prefix caching turned off: %s is not a dynamic KV cache", type(cache).__name__)
            self.prefix_caching = False
            return None, 0
        self._window = window_limit(cache)
        if self._anchor(prompt) == 0:
            return None, 0
        entry = self.kv_store.add(ids, anchor, cache) or KVEntry(ids, ids, self._torch.tensor(ids), cache, 0)
        return entry, anchor

    def _keep_length(self, prompt: Prompt) -> int:
        """How much of a scored prompt is worth keeping: up to the end of its conversation (the instruction that
        follows differs from the next turn)."""
        ends = [span[1] for span in prompt.content_spans[-1:] + prompt.image_spans[-1:]]
        return max([prompt.prefix_length, *ends])

    def _plan(self, prompts: Sequence[Prompt]) -> dict[tuple[int, int], tuple[Any, int, list[int]]]:
        """Group prompts into forward passes: one per shared (cached entry, reused length).

        A lone prompt reuses all it can. In a batch, a prompt gets a pass of its own only when its cached
        conversation saves at least ``PRIVATE_REUSE_TOKENS``; the others share their policy prefix.
        """
        choices = [self._reuse(p) for p in prompts]
        groups: dict[tuple[int, int], tuple[Any, int, list[int]]] = {}
        shared: dict[tuple[int, ...], Any] = {}
        for i, (prompt, (entry, length)) in enumerate(zip(prompts, choices)):
            anchor = self._anchor(prompt)
            if entry is not None and len(prompts) > 1 and length - anchor < PRIVATE_REUSE_TOKENS:
                entry, length = shared.setdefault(prompt.input_ids[:anchor], entry), anchor
            key = (id(entry), length)
            groups.setdefault(key, (entry, length, []))[2].append(i)
        return groups

    # -- scoring ---------------------------------------------------------------------------------

    def score(self, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        results: list[AnswerScores] = [None] * len(prompts)  # type: ignore[list-item]
        with self._lock, self._torch.inference_mode():
            for entry, length, members in self._plan(prompts).values():
                group = [prompts[i] for i in members]
                for i, scores in zip(members, self._score_group(entry, length, group)):
                    results[i] = scores
        return results

    def _score_group(self, entry: Any, length: int, prompts: Sequence[Prompt]) -> list[AnswerScores]:
        """One forward pass over the prompts' ids after the first ``length`` (cached in ``entry``) + ["\n\n"],
        logits kept at the last two positions: on the static (graph) path when it is on and the pass fits its
        buckets, else eagerly. Each prompt's conversation KV is then kept for later checks."""
        from .kv_store import from_tensors, owned_row

        rows = [list(p.input_ids[length:]) + [self.tokens.blank] for p in prompts]
        pixels = self._pixels(prompts, length)
        static = None
        if self.graphs is not None and pixels is None:
            static = self.graphs.score(rows, None if entry is None else entry.cache, length)
        if static is not None:
            probs, kv = static

            def kept(r: int, keep: int) -> Any:  # the static buffer holds row r's KV at [0, keep) already
                keys = [k[r : r + 1, :, :keep].clone() for k in kv.keys]
                return from_tensors(entry.cache, keys, [v[r : r + 1, :, :keep].clone() for v in kv.values])

        else:
            probs, cache, width = self._eager_pass(entry, length, rows, pixels)

            def kept(r: int, keep: int) -> Any:  # skip row r's left padding
                start = length + width - len(rows[r])
                return owned_row(cache, r, length, start, start + keep - length)

        picked = probs.double().cpu().tolist()
        if entry is not None and self.cache_conversations:
            for r, prompt in enumerate(prompts):
                keep = self._keep_length(prompt)
                if keep > length:
                    images = [image for image in _images(prompt) if image[1] <= keep]
                    self.kv_store.add(prompt.input_ids[:keep], self._anchor(prompt), kept(r, keep), images)
        return [
            AnswerScores(first[0], first[1], first[2], second[0], second[1], reused_tokens=length)
            for first, second in picked
        ]

    def _eager_pass(self, entry: Any, length: int, rows: list[list[int]], pixels: Any) -> tuple[Any, Any, int]:
        """(answer-token probabilities ``[rows, 2, 3]``, the pass's KV cache or None, padded width) of one eager
        pass over left-padded ``rows`` after the first ``length`` positions cached in ``entry``."""
        from .forward import hidden_states, token_probabilities
        from .kv_store import view

        torch = self._torch
        t = self.tokens
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length + width), dtype=torch.long)
        mask[:, :length] = 1
        for i, row in enumerate(rows):  # left padding keeps every row's last two positions aligned
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, length + width - len(row) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, length:]
        kwargs: dict[str, Any] = {"use_cache": False}
        if entry is not None:
            past = view(entry.cache, length)
            if len(rows) > 1:
                past.batch_repeat_interleave(len(rows))
            kwargs = {"past_key_values": past, "use_cache": True}
        hidden, cache = hidden_states(
            self.model,
            ids.to(self.device),
            # Always explicit: without a mask, transformers takes a far slower mask path (30x on CPU).
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            pixel_values=pixels,
            **kwargs,
        )
        # Logits at the last two positions only (the answer, and the answer after a blank line).
        wanted = torch.tensor([t.safe, t.unsafe, t.blank])
        return token_probabilities(self.model, hidden[:, -2:, :], wanted), cache, width

    def warmup(self, build: Callable[[str], Sequence[Prompt]], batch_sizes: Sequence[int] = (1,)) -> float:
        """Score a few one-turn checks of different lengths (``build`` makes their prompts) at each batch size, so
        the static path's CUDA graphs are captured (or its code compiled) now, not at the first checks. Seconds."""
        started = time.perf_counter()
        for text in ("warm up", "warm up " * 40, "warm up " * 100):
            (prompt,) = build(text)
            for size in batch_sizes:
                self.score([prompt] * size)
        self.warmup_s = time.perf_counter() - started
        log.info("warm-up took %.2f s (graph capture or compilation included)", self.warmup_s)
        return self.warmup_s

    def category_text(self, prompt: Prompt, *, leading_blank: bool, max_new_tokens: int = 24) -> str:
        """Greedy decoding after "unsafe\n" (reusing cached KV), stopping at the end of the line."""
        from .forward import CACHE_ARGUMENT
        from .kv_store import view

        torch = self._torch
        t = self.tokens
        forced = ([t.blank] if leading_blank else []) + [t.unsafe, t.newline]
        ids = torch.tensor([list(prompt.input_ids) + forced], device=self.device)
        extra: dict[str, Any] = {}
        with self._lock, torch.inference_mode():
            entry, length = self._reuse(prompt)
            if entry is None or (self._window is not None and ids.shape[1] + max_new_tokens > self._window):
                length = 0
            if length:
                extra[CACHE_ARGUMENT] = view(entry.cache, length)
            pixels = self._pixels([prompt], length)
            if pixels is not None:
                extra["pixel_values"] = pixels
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                **extra,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=[t.eot, t.newline],
                pad_token_id=self.pad_token_id,
            )
        new = [i for i in out[0, ids.shape[1] :].tolist() if i not in (t.eot, t.newline, self.pad_token_id)]
        return self._decode(new)


def _images(prompt: Prompt) -> list[tuple[int, int, bytes]]:
    """(start, end, pixel digest) of each image of the prompt, in order."""
    return [(start, end, digest) for (start, end), digest in zip(prompt.image_spans, prompt.image_digests)]


def resolve_model_path(
    model: str | os.PathLike[str],
    *,
    local_files_only: bool | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """A local folder holding the checkpoint: ``model`` itself, or the Hugging Face cache/download."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} exists but holds no config.json: not a model folder. {ACCESS_HELP}")
        return path
    text = str(model)
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ModelNotFoundError(f"model folder {text!r} does not exist. {ACCESS_HELP}")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = local_files_only if local_files_only is not None else constants.HF_HUB_OFFLINE
    try:
        return Path(
            snapshot_download(text, revision=revision, token=token, local_files_only=offline, cache_dir=cache_dir)
        )
    except GatedRepoError as exc:
        raise ModelNotFoundError(
            f"access to {text} is gated and this account has not been granted it. {ACCESS_HELP}"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotFoundError(f"no model repository {text!r} (or no access to it). {ACCESS_HELP}") from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"{text} is not in the Hugging Face cache ({cache_dir or constants.HF_HUB_CACHE}) and could not be downloaded "
            f"({type(exc).__name__}). {ACCESS_HELP}"
        ) from exc


def load_config(path: Path) -> Any:
    """The checkpoint's config with the shipped Llama Guard 4 bugs fixed."""
    from transformers import Llama4Config, PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(str(path))
    text = config.setdefault("text_config", {})
    if text.get("attention_chunk_size") is None:
        text["attention_chunk_size"] = ATTENTION_CHUNK_SIZE
        text.pop("layer_types", None)
    if "attn_temperature_tuning" in text:
        text["attn_temperature_tuning"] = bool(text["attn_temperature_tuning"])
    return Llama4Config.from_dict(config)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path: Path, *, device: str | None, dtype: Any, quantization: str | None) -> Any:
    import torch
    from transformers import Llama4ForConditionalGeneration

    device = device or default_device()
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    kwargs: dict[str, Any] = {"config": load_config(path), "dtype": dtype}
    if quantization is not None:
        kwargs["quantization_config"] = _quantization_config(quantization, dtype)
        kwargs["device_map"] = device if device != "cpu" else "auto"
    model = Llama4ForConditionalGeneration.from_pretrained(str(path), **kwargs)
    if quantization is None:
        model = model.to(device)
    return model.eval()


def _quantization_config(quantization: str, dtype: Any) -> Any:
    if quantization not in ("8bit", "4bit"):
        raise ValueError(f"quantization must be '8bit' or '4bit', got {quantization!r}")
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise ImportError(
            "8-/4-bit loading needs bitsandbytes: pip install 'llamaguard-guardrails[quantization]'"
        ) from exc
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4")


def load_processor(path: Path) -> tuple[Any, Any | None]:
    """(tokenizer, image processor or None). Without torchvision, text still works; images raise.

    The tokenizer is read once (the processor's own): reading the 202k-token tokenizer is most of loading time."""
    from transformers import AutoTokenizer

    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(str(path))
        return processor.tokenizer, processor
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        reason = exc
    tokenizer = AutoTokenizer.from_pretrained(str(path))  # raises when there is no tokenizer either
    log.warning("image processor unavailable (%s): text checks only", reason)
    return tokenizer, None
