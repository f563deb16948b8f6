"""Coalesces concurrent checks into batched forward passes.

Callers (threads, or async tasks through the guard's executor) submit prompts; one worker thread
takes everything queued while the model was busy and scores it in one batch. A lone caller is
scored at once (no added wait unless ``max_wait_s`` > 0), so concurrency raises throughput without
hurting single-check latency. Batches are bounded by ``max_batch`` prompts.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from .prompt import Prompt

ScoreFn = Callable[[Sequence[Prompt]], list[Any]]


class MicroBatcher:
    def __init__(self, score: ScoreFn, *, max_batch: int = 16, max_wait_s: float = 0.0) -> None:
        self._score = score
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[list[Prompt], Future[list[Any]]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batch_sizes: list[int] = []  # recent batch sizes, for observability (bounded)

    def score(self, prompts: Sequence[Prompt]) -> list[Any]:
        """Score ``prompts`` (possibly together with other callers' prompts); blocks until done."""
        future: Future[list[Any]] = Future()
        self._ensure_worker()
        self._queue.put((list(prompts), future))
        return future.result()

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="llamaguard-batcher", daemon=True)
                    self._thread.start()

    def _take(self) -> list[tuple[list[Prompt], Future[list[Any]]]]:
        batch = [self._queue.get()]
        size = len(batch[0][0])
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch:
            try:
                remaining = deadline - time.monotonic()
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
            size += len(item[0])
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            flat = [p for prompts, _ in batch for p in prompts]
            self.batch_sizes = [*self.batch_sizes[-255:], len(flat)]
            try:
                results = self._score(flat)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, future in batch:
                    future.set_exception(exc)
                continue
            offset = 0
            for prompts, future in batch:
                future.set_result(results[offset : offset + len(prompts)])
                offset += len(prompts)
