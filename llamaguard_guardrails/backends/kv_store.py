"""Reusable KV caches of prompt beginnings, so a check pays only for the tokens after its longest cached prefix.

Keys and values at position ``i`` depend only on ``input_ids[: i + 1]`` (causal attention), so any cached
prompt's KV, cut to the length it shares with a new prompt, is exactly the KV the new prompt would compute.
Entries are grouped by *anchor* (the policy part of the prompt: task line and categories) and hold the KV up to
the end of the conversation, so the next turn of an agent, or the next window of a stream, reuses the history
as well as the policy. The KV of an image's tokens depends on its pixels, not its ids (two images of one size
have the same ids), so an entry remembers the digest of each image it holds, and a prompt reuses KV only up to
the first image whose pixels differ, never cutting an image in two.

A forward pass never writes into cached tensors: transformers' dynamic cache layers grow by concatenation,
so a view is a shallow copy of the layer objects around the same tensors.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

#: An image in a prompt: its token span [start, end) and the digest of its pixel tiles.
Image = tuple[int, int, bytes]


@dataclass(eq=False)
class KVEntry:
    """The KV cache of ``ids`` (batch 1), owned by the store."""

    ids: tuple[int, ...]
    anchor: tuple[int, ...]
    ids_tensor: torch.Tensor
    cache: Any
    nbytes: int
    images: tuple[Image, ...] = ()

    def shared_length(self, ids: torch.Tensor) -> int:
        """How many leading tokens ``ids`` shares with this entry."""
        n = min(len(self.ids), len(ids))
        differ = (self.ids_tensor[:n] != ids[:n]).nonzero()
        return int(differ[0, 0]) if len(differ) else n

    def reusable_length(self, ids: torch.Tensor, images: Sequence[Image], limit: int) -> int:
        """How many leading tokens of a prompt (``ids``, its ``images``) this entry's KV serves, at most
        ``limit``: the shared ids, cut before the first image the entry does not hold with the same pixels."""
        length = min(self.shared_length(ids), limit)
        for image in images:
            start, end, _ = image
            if start >= length:
                break
            if end > length or image not in self.images:
                return start
        return length


def supports(cache: Any) -> bool:
    """Whether ``cache`` is a dynamic cache whose layers this store can cut and share."""
    return isinstance(cache, DynamicCache) and all(type(layer) in _LAYER_TYPES for layer in cache.layers)


def view(cache: Any, length: int) -> Any:
    """The first ``length`` positions of ``cache``, sharing its tensors (a forward pass never writes into them)."""
    return _rebuild(cache, lambda t: t[:, :, :length, :])


def window_limit(cache: Any) -> int | None:
    """Longest sequence the cache keeps whole (sliding/chunked layers drop older positions beyond it)."""
    windows = [layer.sliding_window for layer in cache.layers if isinstance(layer, DynamicSlidingWindowLayer)]
    return min(windows) - 1 if windows else None


def owned_row(cache: Any, row: int, head: int, start: int, stop: int) -> Any:
    """Row ``row`` of a batched cache as a batch-1 cache of its own tensors: positions ``[0, head)`` followed by
    ``[start, stop)`` (skipping the row's left padding)."""

    def take(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t[row : row + 1, :, :head, :], t[row : row + 1, :, start:stop, :]], dim=-2).contiguous()

    return _rebuild(cache, take)


def from_tensors(template: Any, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> Any:
    """A cache with ``template``'s layer types holding ``keys`` and ``values`` (one tensor of each per layer)."""
    if not len(keys) == len(values) == len(template.layers):
        raise ValueError("one key and one value tensor per layer of the template")
    tensors = iter([t for pair in zip(keys, values) for t in pair])  # _rebuild asks for each layer's keys, then values
    return _rebuild(template, lambda _: next(tensors))


def _rebuild(cache: Any, transform) -> Any:
    new = copy.copy(cache)
    new.layers = []
    for layer in cache.layers:
        clone = copy.copy(layer)
        if layer.is_initialized:
            clone.keys, clone.values = transform(layer.keys), transform(layer.values)
            if isinstance(layer, DynamicSlidingWindowLayer):
                clone.cumulative_length = clone.keys.shape[-2]
        new.layers.append(clone)
    return new


def _nbytes(cache: Any) -> int:
    return sum(t.nbytes for layer in cache.layers if layer.is_initialized for t in (layer.keys, layer.values))


_LAYER_TYPES = (DynamicLayer, DynamicSlidingWindowLayer)


class PrefixKVStore:
    """LRU store of KV caches, bounded in entries and bytes; lookups find the longest shared prefix."""

    def __init__(self, *, max_entries: int = 16, max_bytes: int = 512 * 2**20) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, KVEntry] = OrderedDict()
        self._by_anchor: dict[tuple[int, ...], list[KVEntry]] = {}
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, ids: Sequence[int], anchor: int, images: Sequence[Image] = ()) -> tuple[KVEntry | None, int]:
        """The entry whose KV serves the most leading tokens of a prompt (``ids``, its ``images``; at least the
        ``anchor`` first tokens), and how many, at most ``len(ids) - 1`` so a pass always has a token to run."""
        candidates = self._by_anchor.get(tuple(ids[:anchor]), [])
        if not candidates:
            return None, 0
        query = torch.tensor(ids, dtype=torch.long)
        best, best_length = None, 0
        for entry in candidates:
            length = entry.reusable_length(query, images, len(ids) - 1)
            if length > best_length:
                best, best_length = entry, length
        if best is not None:
            self._entries.move_to_end(id(best))
        return best, best_length

    def add(self, ids: Sequence[int], anchor: int, cache: Any, images: Sequence[Image] = ()) -> KVEntry | None:
        """Keep ``cache`` (the KV of ``ids``, batch 1; the caller must not use it any more) under the anchor
        ``ids[:anchor]``. Entries that are a prefix of ``ids`` are dropped: the new one serves every prompt they
        served. ``images`` are the images inside ``ids``. An entry larger than the whole budget is not kept."""
        ids = tuple(ids)
        nbytes = _nbytes(cache)
        if nbytes > self.max_bytes or len(ids) < anchor:
            return None
        for old in list(self._by_anchor.get(ids[:anchor], [])):
            if old.ids == ids[: len(old.ids)]:
                self._remove(old)
        entry = KVEntry(ids, ids[:anchor], torch.tensor(ids, dtype=torch.long), cache, nbytes, tuple(images))
        self._by_anchor.setdefault(entry.anchor, []).append(entry)
        self._entries[id(entry)] = entry
        self.nbytes += nbytes
        while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
            self._remove(next(iter(self._entries.values())))
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self._by_anchor.clear()
        self.nbytes = 0

    def _remove(self, entry: KVEntry) -> None:
        del self._entries[id(entry)]
        group = self._by_anchor[entry.anchor]
        group.remove(entry)
        if not group:
            del self._by_anchor[entry.anchor]
        self.nbytes -= entry.nbytes
