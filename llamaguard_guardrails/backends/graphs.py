"""The score pass on static buffers, captured in CUDA graphs: a check replays one graph instead of ~2,300 launches.

A GPU check at batch 1 is launch-bound: Python and kernel launches cost more than the GPU work. CUDA graphs
replay a recorded sequence of kernels, which requires every tensor the kernels touch to keep its shape and
address. So the score pass runs on static buffers, as transformers' ``StaticCache`` does for decoding:

- a KV buffer per batch bucket (``[batch, kv heads, length, head dim]`` per layer, allocated once) into which
  a cached prompt beginning is copied before the pass; the pass writes its new tokens' keys and values after it
  (``index_copy_`` at a position tensor, as ``StaticLayer.update`` does);
- the new tokens right-padded to a length bucket (powers of two from 16), attention over a key-length bucket
  (powers of two from 256, a view of the KV buffer) with an explicit causal mask, so the padding is never
  attended by a real token; the two answer positions are gathered per row before the head.

One graph per (batch, new tokens, key length) bucket, captured on first use (``warmup`` captures the usual
ones at load) and replayed afterwards; all graphs share one memory pool. On CPU the same buffers, padding,
masks and gathers run without capture (tested there for equality with the eager pass); ``compile_mode`` wraps
each bucket's step in ``torch.compile`` instead (inductor; with ``"reduce-overhead"`` on CUDA its own graphs).
Image prompts, prompts beyond the buckets and the vision tower stay on the eager path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from . import forward

log = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)
MIN_NEW_TOKENS = 16
MIN_KV_LENGTH = 256


def bucket(n: int, minimum: int) -> int:
    """The smallest power of two times ``minimum`` that holds ``n``."""
    size = minimum
    while size < n:
        size *= 2
    return size


class StaticKV:
    """Per-layer key/value buffers of one batch bucket, and the positions the next pass writes."""

    def __init__(self, config: Any, batch: int, length: int, dtype: torch.dtype, device: torch.device) -> None:
        heads, dim = config.num_key_value_heads, config.head_dim
        shape = (batch, heads, length, dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.batch, self.length = batch, length

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.keys + self.values)


class KVView:
    """The first ``length`` positions of a :class:`StaticKV`, as the cache object transformers' attention layers
    call: ``update`` writes the new keys/values at ``index`` in place and returns the whole (static) view."""

    def __init__(self, kv: StaticKV, length: int, index: torch.Tensor, start: torch.Tensor) -> None:
        self.keys = [k[:, :, :length] for k in kv.keys]
        self.values = [v[:, :, :length] for v in kv.values]
        self.index = index
        self.start = start

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys.index_copy_(2, self.index, key_states.to(keys.dtype))
        values.index_copy_(2, self.index, value_states.to(values.dtype))
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> torch.Tensor:
        """Tokens before the pass (read by Llama 4's attention temperature tuning only)."""
        return self.start


@dataclass(eq=False)
class Runner:
    """The static inputs, outputs and (on CUDA) graph of one (batch, new tokens, key length) bucket."""

    batch: int
    tokens: int
    length: int
    ids: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor
    start: torch.Tensor
    gather: torch.Tensor
    out: torch.Tensor
    cache: KVView
    step: Any = None
    graph: Any = None
    capture_s: float = 0.0
    calls: int = field(default=0)


class GraphScorer:
    """Answer-token probabilities of text prompts through static, bucketed (and on CUDA, captured) passes."""

    def __init__(
        self,
        model: Any,
        wanted: Sequence[int],
        *,
        capture: bool | None = None,
        compile_mode: str | None = None,
        max_tokens: int = 16384,
        batch_buckets: Sequence[int] = BATCH_BUCKETS,
    ) -> None:
        self.model = model
        self.config = model.config.text_config
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.wanted = torch.tensor(list(wanted), device=self.device)
        if capture is None:  # torch.compile's "reduce-overhead" captures graphs of its own
            capture = self.device.type == "cuda" and compile_mode is None
        if capture and (self.device.type != "cuda" or compile_mode is not None):
            raise ValueError("CUDA graphs are captured on a CUDA device, without torch.compile")
        self.capture = capture
        self.compile_mode = compile_mode
        chunk = getattr(self.config, "attention_chunk_size", None) or max_tokens
        #: Longest prompt (cached beginning + new tokens + padding) a batch bucket holds.
        self.max_tokens = min(max_tokens, chunk)  # below the chunk size, chunked attention is full attention
        self.batch_buckets = tuple(sorted(batch_buckets))
        self._kv: dict[int, StaticKV] = {}
        self._runners: dict[tuple[int, int, int], Runner] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.capture else None
        self.capture_errors: list[str] = []

    # -- buckets ---------------------------------------------------------------------------------

    def shape(self, batch: int, cached: int, new_tokens: int) -> tuple[int, int, int] | None:
        """(batch, new tokens, key length) bucket of a pass, or None when it is beyond the buckets."""
        rows = next((b for b in self.batch_buckets if b >= batch), None)
        if rows is None:
            return None
        tokens = bucket(new_tokens, MIN_NEW_TOKENS)
        length = bucket(cached + tokens, MIN_KV_LENGTH)
        if length > self._kv_length(rows):
            return None
        return rows, tokens, length

    def _kv_length(self, rows: int) -> int:
        return max(MIN_KV_LENGTH, self.max_tokens // rows)

    @property
    def graphs(self) -> int:
        return sum(r.graph is not None for r in self._runners.values())

    @property
    def capture_s(self) -> float:
        """Seconds spent capturing graphs (or compiling) so far."""
        return sum(r.capture_s for r in self._runners.values())

    @property
    def nbytes(self) -> int:
        """Bytes held by the static KV buffers."""
        return sum(kv.nbytes for kv in self._kv.values())

    # -- scoring ---------------------------------------------------------------------------------

    def score(self, rows: Sequence[Sequence[int]], past: Any, cached: int) -> tuple[torch.Tensor, StaticKV] | None:
        """Probabilities ``[len(rows), 2, len(wanted)]`` (float32, on the device) at the last two tokens of each
        row, which follow the ``cached`` positions of ``past`` (a batch-1 KV cache; None when ``cached`` is 0).
        Also the KV buffer, holding each row's keys and values at ``[0, cached + len(row))``. None when the pass
        is beyond the buckets (the caller runs it eagerly)."""
        shape = self.shape(len(rows), cached, max(len(r) for r in rows))
        if shape is None:
            return None
        runner = self._runner(*shape)
        self._load(runner, rows, past, cached)
        if runner.graph is not None:
            runner.graph.replay()
        else:
            runner.step()
        runner.calls += 1
        return runner.out[: len(rows)], self._kv[runner.batch]

    def _load(self, runner: Runner, rows: Sequence[Sequence[int]], past: Any, cached: int) -> None:
        """Fill the runner's static inputs (and its KV buffer's first ``cached`` positions) for ``rows``."""
        torch_ = torch
        tokens, device = runner.tokens, self.device
        ids = torch_.zeros((runner.batch, tokens), dtype=torch_.long)
        lengths = [len(r) for r in rows] + [len(rows[0])] * (runner.batch - len(rows))  # spare rows: row 0 again
        for i, row in enumerate(list(rows) + [rows[0]] * (runner.batch - len(rows))):
            ids[i, : len(row)] = torch_.tensor(row)
        runner.ids.copy_(ids)
        steps = torch_.arange(tokens, device=device)
        runner.positions.copy_((steps + cached).expand(runner.batch, tokens))
        runner.index.copy_(steps + cached)
        runner.start.fill_(cached)
        keys = torch_.arange(runner.length, device=device)
        runner.mask.copy_((keys[None, :] <= steps[:, None] + cached).expand_as(runner.mask))
        last = torch_.tensor([[n - 2, n - 1] for n in lengths], device=device)
        runner.gather.copy_(last[:, :, None].expand_as(runner.gather))
        if cached:
            kv = self._kv[runner.batch]
            for layer, (keys_, values) in enumerate(zip(kv.keys, kv.values)):
                source = past.layers[layer]
                keys_[:, :, :cached].copy_(source.keys[:, :, :cached].expand(runner.batch, -1, -1, -1))
                values[:, :, :cached].copy_(source.values[:, :, :cached].expand(runner.batch, -1, -1, -1))

    def _runner(self, batch: int, tokens: int, length: int) -> Runner:
        runner = self._runners.get((batch, tokens, length))
        if runner is not None:
            return runner
        kv = self._kv.get(batch)
        if kv is None:
            kv = self._kv[batch] = StaticKV(self.config, batch, self._kv_length(batch), self.dtype, self.device)
        device, hidden = self.device, self.config.hidden_size
        index = torch.zeros(tokens, dtype=torch.long, device=device)
        start = torch.zeros((), dtype=torch.long, device=device)
        runner = Runner(
            batch=batch,
            tokens=tokens,
            length=length,
            ids=torch.zeros((batch, tokens), dtype=torch.long, device=device),
            positions=torch.zeros((batch, tokens), dtype=torch.long, device=device),
            mask=torch.zeros((batch, 1, tokens, length), dtype=torch.bool, device=device),
            index=index,
            start=start,
            gather=torch.zeros((batch, 2, hidden), dtype=torch.long, device=device),
            out=torch.zeros((batch, 2, len(self.wanted)), dtype=torch.float32, device=device),
            cache=KVView(kv, length, index, start),
        )
        runner.step = self._step_fn(runner)
        started = time.perf_counter()
        if self.capture:
            self._capture(runner)
        elif self.compile_mode is not None:
            self._warm(runner)  # compiles now, so the first check does not pay for it
        runner.capture_s = time.perf_counter() - started
        self._runners[batch, tokens, length] = runner
        log.info("score pass bucket %s ready in %.2f s", (batch, tokens, length), runner.capture_s)
        return runner

    def _step_fn(self, runner: Runner):
        model, wanted = self.model, self.wanted
        masks = {kind: runner.mask for kind in set(self.config.layer_types)}

        def step() -> None:
            hidden, _ = forward.hidden_states(
                model,
                runner.ids,
                attention_mask=masks,
                position_ids=runner.positions,
                past_key_values=runner.cache,
                use_cache=True,
            )
            last = hidden.gather(1, runner.gather)
            runner.out.copy_(forward.token_probabilities(model, last, wanted))

        if self.compile_mode is None:
            return step
        return torch.compile(step, mode=self.compile_mode, dynamic=False)

    def _warm(self, runner: Runner) -> None:
        """Run the step on harmless inputs (a causal pass from position 0), so compilation happens now."""
        steps = torch.arange(runner.tokens, device=self.device)
        runner.positions.copy_(steps.expand_as(runner.positions))
        runner.index.copy_(steps)
        runner.start.fill_(0)
        runner.mask.copy_(torch.ones_like(runner.mask).tril())
        runner.gather.fill_(0)
        runner.step()

    def _capture(self, runner: Runner) -> None:
        """Warm up on a side stream (as torch.cuda.graphs asks), then record the step into a CUDA graph."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._warm(runner)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self._pool):
                runner.step()
        except RuntimeError as exc:  # e.g. an op that syncs with the host: the bucket runs uncaptured
            self.capture_errors.append(f"{(runner.batch, runner.tokens, runner.length)}: {exc}")
            log.warning("CUDA graph capture failed, the static pass runs uncaptured: %s", exc)
            return
        runner.graph = graph

    def warmup(self, cached: int, new_tokens: Sequence[int] = (64, 128, 256), batches: Sequence[int] = (1,)) -> float:
        """Prepare (capture or compile) the buckets of passes after ``cached`` positions; returns the seconds."""
        started = time.perf_counter()
        for batch in batches:
            for tokens in new_tokens:
                shape = self.shape(batch, cached, tokens)
                if shape is not None:
                    self._runner(*shape)
        return time.perf_counter() - started
