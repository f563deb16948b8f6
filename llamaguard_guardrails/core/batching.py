"""Batched forward passes: concurrent checks coalesced by :class:`MicroBatcher`, a batch run sorted by length.

Callers (threads, or async tasks through the guard's executor) submit prompts; one worker thread
takes everything queued while the model was busy and scores it in one batch. A lone caller is
scored at once (no added wait unless ``max_wait_s`` > 0), so concurrency raises throughput without
hurting single-check latency. Batches are bounded by ``max_batch`` prompts.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from .errors import GuardClosedError
from .prompt import Prompt

ScoreFn = Callable[[Sequence[Prompt]], list[Any]]
K = TypeVar("K")
_Item = tuple[list[Prompt], "Future[list[Any]]"]
_STOP = object()  # queued by close(): the worker finishes what came before it, then exits


def _closed(prompts: Sequence[Prompt]) -> list[Any]:
    raise GuardClosedError("the guard is closed")


class MicroBatcher:
    def __init__(self, score: ScoreFn, *, max_batch: int = 16, max_wait_s: float = 0.0) -> None:
        self._score = score
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._is_closed = False
        self.batch_sizes: list[int] = []  # recent batch sizes, for observability (bounded)

    def score(self, prompts: Sequence[Prompt]) -> list[Any]:
        """Score ``prompts`` (possibly together with other callers' prompts); blocks until done.

        Raises :class:`GuardClosedError` once :meth:`close` was called.
        """
        future: Future[list[Any]] = Future()
        with self._lock:  # nothing is queued behind the stop marker, where no worker would take it
            if self._is_closed:
                raise GuardClosedError("the guard is closed")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llamaguard-batcher", daemon=True)
                self._thread.start()
            self._queue.put((list(prompts), future))
        return future.result()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker thread and drop the scoring function (and so the guard it belongs to). Idempotent.

        Prompts already queued are still scored; callers arriving later get :class:`GuardClosedError`.
        Waits up to ``timeout_s`` for a running forward pass (a hung model is left behind, never waited on).
        """
        with self._lock:
            if self._is_closed:
                return
            self._is_closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        self._score = _closed

    def _take(self) -> tuple[list[_Item], bool]:
        """The next batch, and whether the stop marker came after it."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        size = len(first[0])
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch:
            try:
                remaining = deadline - time.monotonic()
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
            size += len(item[0])
        return batch, False

    def _run(self) -> None:
        while True:
            batch, stop = self._take()
            if batch:
                self._deliver(batch)
            if stop:
                return

    def _deliver(self, batch: list[_Item]) -> None:
        """Score what was taken, ``max_batch`` prompts a forward pass at most: one check of many windows (a long
        text) never becomes one pass of unbounded memory."""
        flat = [p for prompts, _ in batch for p in prompts]
        self.batch_sizes = [*self.batch_sizes[-255:], len(flat)]
        try:
            results = []
            for start in range(0, len(flat), self.max_batch):
                results += self._score(flat[start : start + self.max_batch])
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
            for _, future in batch:
                future.set_exception(exc)
            return
        offset = 0
        for prompts, future in batch:
            future.set_result(results[offset : offset + len(prompts)])
            offset += len(prompts)


def score_in_batches(
    prompts: Mapping[K, Prompt],
    score: ScoreFn,
    batch_size: int,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[int], Any] | None = None,
) -> dict[K, Any] | None:
    """Scores of ``prompts`` by key, in batches of similar lengths (less padding per forward pass).

    A batch whose ``score`` call raises gives that exception as the score of each of its prompts.
    ``None`` when ``stop`` is set before a batch (the caller's deadline passed); ``progress`` gets
    the size of each batch scored.
    """
    order = sorted(prompts, key=lambda key: len(prompts[key]))
    scores: dict[K, Any] = {}
    for start in range(0, len(order), batch_size):
        if stop is not None and stop.is_set():
            return None
        chunk = order[start : start + batch_size]
        try:
            results = score([prompts[key] for key in chunk])
        except Exception as exc:  # noqa: BLE001 - every model failure becomes the fail mode
            results = [exc] * len(chunk)
        scores.update(zip(chunk, results, strict=True))
        if progress is not None:
            progress(len(chunk))
    return scores
