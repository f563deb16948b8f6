"""A bounded LRU of verdicts keyed on the exact prompt tokens, images and policy."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from .policy import Policy
from .prompt import Prompt


def cache_key(prompts: Sequence[Prompt], policy: Policy) -> bytes:
    digest = hashlib.blake2b(policy.model_dump_json().encode(), digest_size=24)
    for prompt in prompts:
        digest.update(len(prompt.input_ids).to_bytes(8, "little"))
        digest.update(prompt.ids_digest)
        if prompt.image_digests:
            digest.update(b"".join(prompt.image_digests))
        elif prompt.pixel_values is not None:
            digest.update(prompt.pixel_values.float().cpu().numpy().tobytes())
        digest.update(repr((prompt.omitted_messages, prompt.checked_message_index)).encode())
    return digest.digest()


V = TypeVar("V", bound=Any)


class VerdictCache(Generic[V]):
    """Thread-safe LRU of verdicts (:class:`Verdict`, or a window's); ``maxsize=0`` disables it. Only verdicts
    without errors are stored."""

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[bytes, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: bytes) -> V | None:
        if not self.maxsize:
            return None
        with self._lock:
            verdict = self._items.get(key)
            if verdict is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return verdict

    def put(self, key: bytes, verdict: V) -> None:
        if not self.maxsize or verdict.error is not None:
            return
        with self._lock:
            self._items[key] = verdict
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
