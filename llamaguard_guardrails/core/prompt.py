"""The official Llama Guard 4 prompt, built directly as token ids.

The prompt is a sequence of *control tokens* (``<|begin_of_text|>``, headers, ``<|eot|>``, image
tokens) and *text runs* between them. Text runs - template text together with the caller's content,
exactly as the official chat template lays them out - are tokenized with special-token matching
switched off, so a ``<|eot|>`` typed by a user is plain text and can never become a control token.
For conversations without such strings the ids equal the official processor's, because a Hugging
Face tokenizer also encodes the text between special tokens independently.
"""

from __future__ import annotations

import array
import bisect
import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from PIL import Image
from tokenizers import Tokenizer

from .conversation import Block, Conversation, Role
from .depth import Depth
from .errors import InvalidConversationError, InvalidPolicyError
from .policy import Policy

BEGIN_OF_TEXT = "<|begin_of_text|>"
HEADER_START = "<|header_start|>"
HEADER_END = "<|header_end|>"
EOT = "<|eot|>"
IMAGE_START = "<|image_start|>"
IMAGE_END = "<|image_end|>"
IMAGE = "<|image|>"
PATCH = "<|patch|>"
TILE_X = "<|tile_x_separator|>"
TILE_Y = "<|tile_y_separator|>"
CONTROL_TOKENS = (BEGIN_OF_TEXT, HEADER_START, HEADER_END, EOT, IMAGE_START, IMAGE_END, IMAGE, PATCH, TILE_X, TILE_Y)

# After each message text the official template writes a LITERAL backslash-n pair, then a real blank line.
MESSAGE_END = "\\n\\n\n\n"


def task_text(role: Role, categories: dict[str, str]) -> str:
    """The fixed part of the prompt up to the conversation (after ``<|header_end|>``)."""
    lines = "".join(f"{code}: {text}\n" for code, text in categories.items())
    return (
        f"\n\nTask: Check if there is unsafe content in '{role}' messages in conversations according to our "
        "safety policy with the below categories.\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n"
        f"{lines}<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN CONVERSATION>\n"
    )


def instruction_text(role: Role) -> str:
    """The instruction after the conversation, up to ``<|eot|>``."""
    return (
        f"<END CONVERSATION>\n\nProvide your safety assessment for ONLY THE LAST {role} message in the above "
        "conversation:\n - First line must read 'safe' or 'unsafe'.\n - If unsafe, a second line must include "
        "a comma-separated list of violated categories. "
    )


@dataclass(frozen=True)
class Prompt:
    """Token ids of one check, with what a backend and a verdict need to know about them."""

    input_ids: tuple[int, ...]
    images: tuple[Image.Image, ...]
    prefix_length: int
    content_spans: tuple[tuple[int, int], ...]
    checked_role: Role
    checked_message_index: int
    omitted_messages: tuple[int, ...] = ()
    window: tuple[int, int] = (1, 1)
    #: A history window: older messages, left out of the last message's context, classified on their own.
    history: bool = False
    has_images: bool = False
    pixel_values: Any = field(default=None, compare=False, repr=False)
    #: Each image's token span [start, end) in ``input_ids`` and its number of pixel tiles (rows of
    #: ``pixel_values``, in the same order).
    image_spans: tuple[tuple[int, int], ...] = ()
    image_tiles: tuple[int, ...] = ()
    #: The checked message's languages and why a verdict on it should not be trusted (set by the guard).
    depth: Depth | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.input_ids)

    @functools.cached_property
    def ids_digest(self) -> bytes:
        """A digest of ``input_ids`` (computed once per prompt: a memoized history window is hashed once)."""
        return hashlib.blake2b(array.array("q", self.input_ids).tobytes(), digest_size=24).digest()

    @functools.cached_property
    def image_digests(self) -> tuple[bytes, ...]:
        """A digest of each image's pixel tiles (equal digests, equal model inputs); computed on first use, by
        the verdict cache or the KV store, never for a check that needs neither."""
        if self.pixel_values is None:
            return ()
        data = self.pixel_values.contiguous()
        data = data.view(-1).view(_torch_uint8()).view(data.shape[0], -1)  # the raw bytes, whatever the dtype
        digests, start = [], 0
        for count in self.image_tiles:
            tiles = memoryview(data[start : start + count].numpy())
            digests.append(hashlib.blake2b(tiles, digest_size=16).digest())
            start += count
        return tuple(digests)


@dataclass
class _Builder:
    """Accumulates control ids and text runs; text runs are tokenized together at the end."""

    pieces: list[tuple[str, Any, bool]] = field(default_factory=list)  # ("ids", list, image?) | ("text", str, content?)

    def control(self, ids: Sequence[int], *, image: bool = False) -> None:
        self.pieces.append(("ids", list(ids), image))

    def text(self, text: str, *, content: bool = False) -> None:
        if text:
            self.pieces.append(("text", text, content))

    def runs(self) -> list[tuple[str, Any]]:
        """Merge adjacent text pieces into runs: ("ids", ids, image?) | ("run", text, content char spans)."""
        out: list[tuple[str, Any, Any]] = []
        for kind, value, flag in self.pieces:
            if kind == "ids":
                out.append(("ids", value, flag))
                continue
            if not out or out[-1][0] != "run":
                out.append(("run", "", []))
            _, text, spans = out[-1]
            if flag:
                spans.append((len(text), len(text) + len(value)))
            out[-1] = ("run", text + value, spans)
        return out


class PromptBuilder:
    """Builds :class:`Prompt` objects for a tokenizer (and, for images, an image processor)."""

    def __init__(
        self,
        tokenizer: Any,
        image_processor: Any | None = None,
        *,
        patch_size: int = 14,
        pixel_shuffle_ratio: float = 0.5,
    ) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        # A private copy that never matches special tokens and is never reconfigured afterwards:
        # content stays text, and concurrent encodes never race on shared tokenizer settings.
        self._plain = Tokenizer.from_str(backend.to_str())
        self._plain.no_truncation()
        self._plain.no_padding()
        self._plain.encode_special_tokens = True
        self.ids: dict[str, int] = {}
        for token in CONTROL_TOKENS:
            token_id = self._plain.token_to_id(token)
            if token_id is None:
                raise ValueError(f"tokenizer has no {token} token: this is not a Llama 4 tokenizer")
            self.ids[token] = token_id
        self.control_ids = frozenset(
            token_id for token_id, token in self._plain.get_added_tokens_decoder().items() if token.special
        )
        self._image_processor = image_processor
        self._patch_size = patch_size
        self._downsample = int(round(1.0 / (pixel_shuffle_ratio**2)))
        #: History windows of recent checks: the next check of a growing conversation leaves out the same history.
        self._history_memo: _Memo[list[Prompt]] = _Memo(32)

    # -- tokenization -----------------------------------------------------------------------------

    def encode_text(self, text: str) -> list[int]:
        """Token ids of ``text`` with special-token strings treated as plain text."""
        return self._plain.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._plain.decode(list(ids), skip_special_tokens=False)

    # -- building ---------------------------------------------------------------------------------

    def build(self, conversation: Conversation, policy: Policy, *, max_tokens: int | None = None) -> list[Prompt]:
        """The prompt(s) for ``conversation``: the check of its last message first (one prompt, or several
        windows when the last message alone is too long), then the history windows, if any.

        When the whole conversation does not fit ``max_tokens``, the oldest messages are left out of the last
        message's context (and reported in ``omitted_messages``); the last message and the instruction are
        always kept. Nothing left out goes unchecked: the left-out messages are classified in *history
        windows* (see :meth:`_history`), and the check is unsafe when any window is. Trimming has hysteresis
        (see :func:`trim_limit`), so the next turns of a growing conversation keep the same beginning and its
        KV cache can be reused, and the history windows stay the same (their verdicts are cached).
        """
        prompt = self._build_one(conversation, policy)
        if max_tokens is None or len(prompt) <= max_tokens:
            return [prompt]
        blocks = conversation.blocks()
        # Fewer leading blocks -> shorter prompt: binary-search the fewest blocks to drop, never touching
        # the blocks of the last message (its text, tool calls and images stay whole). First down to the
        # hysteresis watermark; when even the last message alone is above it, to the limit itself. The first
        # probe is the guess from the blocks' token offsets, the second its neighbour: two builds, usually.
        last_source = blocks[-1][1].source
        first_of_last = next(i for i, (_, block) in enumerate(blocks) if block.source == last_source)
        starts = _block_starts(prompt, blocks)
        for limit in (trim_limit(len(prompt), max_tokens), max_tokens):
            need = len(prompt) - limit
            guess = next((k for k in range(1, first_of_last) if starts[k] - starts[0] >= need), first_of_last)
            low, high, best, start, cut = 1, first_of_last, None, guess, 0
            while low <= high:
                kept = self._build_one(Conversation.from_blocks(blocks[start:], conversation.message_count), policy)
                if len(kept) <= limit:
                    best, cut, high = replace(kept, omitted_messages=_sources(blocks[:start])), start, start - 1
                    start = high if start == guess else (low + high) // 2
                else:
                    low = start + 1
                    start = low if start == guess else (low + high) // 2
            if best is not None:
                history = self._history(blocks[:cut], conversation.message_count, policy, max_tokens)
                return [best, *history]
        windows = self._windows(blocks, conversation, policy, max_tokens)
        return windows + self._history(blocks[:first_of_last], conversation.message_count, policy, max_tokens)

    def _windows(
        self, blocks: list[tuple[Role, Block]], conversation: Conversation, policy: Policy, max_tokens: int
    ) -> list[Prompt]:
        """Overlapping windows over every block of the last message (text, tool calls, refusals ...), alone.

        Each window holds only pieces of the last message, so it asks about that message and nothing else;
        every window carries all of the message's images. Long texts are cut into overlapping token
        windows; short ones share a window. The earlier messages are reported in ``omitted_messages``.
        """
        last_source = blocks[-1][1].source
        first_of_last = next(i for i, (_, block) in enumerate(blocks) if block.source == last_source)
        role, last = blocks[-1][0], [block for _, block in blocks[first_of_last:]]
        images = tuple(image for block in last for image in block.images)
        prompts = self._pack(role, last, conversation.message_count, policy, max_tokens, shared_images=images)
        return [replace(one, omitted_messages=_sources(blocks[:first_of_last])) for one in prompts]

    def _history(
        self, blocks: Sequence[tuple[Role, Block]], message_count: int, policy: Policy, max_tokens: int
    ) -> list[Prompt]:
        """History windows: the blocks left out of the last message's context, classified on their own.

        Llama Guard judges only the last message of a prompt, of the prompt's role. So each role's left-out
        blocks, in order, are packed into windows that hold that role's content only (one turn): every message a
        window holds is part of the message it judges. Long texts are cut into overlapping pieces, each block's
        images travel with its first piece. Packing is greedy from the oldest block, so while the history grows
        its earlier windows stay the same (and hit the verdict cache).
        """
        prompts: list[Prompt] = []
        for role in ("User", "Agent"):
            mine = [block for r, block in blocks if r == role]
            if not mine:
                continue
            key = _history_key(role, mine, policy, max_tokens)  # None: images, not memoized
            packed = self._history_memo.get(key) if key is not None else None
            if packed is None:
                packed = self._pack(role, mine, message_count, policy, max_tokens, shared_images=None)
                packed = [replace(one, history=True) for one in packed]
                if key is not None:
                    self._history_memo.put(key, packed)
            prompts += packed
        return prompts

    def _pack(
        self,
        role: Role,
        blocks: Sequence[Block],
        message_count: int,
        policy: Policy,
        max_tokens: int,
        *,
        shared_images: tuple[Image.Image, ...] | None,
    ) -> list[Prompt]:
        """Blocks of one role packed into single-turn prompts of at most ``max_tokens``, long texts cut into
        overlapping pieces. ``shared_images``: images every window carries (the last message's); ``None``: each
        block's images go with its first piece."""
        shell = Block(("",), shared_images or (), blocks[-1].source, blocks[0].kind)
        overhead = len(self._build_one(Conversation.from_blocks([(role, shell)], message_count), policy))
        line_cost = len(self.encode_text(f"{role}: {MESSAGE_END}")) + 4  # a text line's frame, plus merge slack
        budget = max_tokens - overhead - line_cost
        if budget < 64:
            if not shared_images:  # the template and the policy's categories alone fill the prompt
                raise InvalidPolicyError(
                    f"max_prompt_tokens={max_tokens} leaves no room for content: the prompt with this policy's "
                    f"categories alone needs {overhead} tokens (raise max_prompt_tokens, or shorten or drop custom "
                    "categories)"
                )
            raise InvalidConversationError(
                f"max_prompt_tokens={max_tokens} leaves no room for content (the prompt with the last message's "
                f"images alone needs {overhead}): send fewer or smaller images"
            )
        windows: list[list[tuple[int, str]]] = [[]]
        firsts: list[set[int]] = [set()]  # blocks whose first piece (and so images) is in each window
        used = 0
        for index, block in enumerate(blocks):
            extra = 0
            if shared_images is None and block.images:
                extra = self._image_cost(role, block, message_count, policy, overhead)
                if budget - extra < 64:
                    raise InvalidConversationError(
                        f"message {block.source}: its images alone need about {extra} tokens, more than "
                        f"max_prompt_tokens={max_tokens} leaves for a history window; send fewer or smaller images"
                    )
            first = True
            for text in block.texts:
                for piece, size in self._pieces(text.strip(), budget - extra if first else budget):
                    cost = size + (extra if first else 0)
                    if windows[-1] and used + cost + line_cost > budget:
                        windows.append([])
                        firsts.append(set())
                        used = 0
                    used += cost + (line_cost if windows[-1] else 0)
                    windows[-1].append((index, piece))
                    if first:
                        firsts[-1].add(index)
                    first = False
        prompts = []
        for n, window in enumerate(windows, 1):
            pieces = [
                replace(
                    blocks[index],
                    texts=tuple(piece for i, piece in window if i == index),
                    images=blocks[index].images if shared_images is None and index in firsts[n - 1] else (),
                )
                for index in dict.fromkeys(i for i, _ in window)
            ]
            if shared_images is not None:
                pieces[0] = replace(pieces[0], images=shared_images)
            one = self._build_one(Conversation.from_blocks([(role, block) for block in pieces], message_count), policy)
            prompts.append(replace(one, window=(n, len(windows))))
        return prompts

    def _image_cost(self, role: Role, block: Block, message_count: int, policy: Policy, overhead: int) -> int:
        """About how many tokens ``block``'s images add to a prompt (their tokens, less S14's line)."""
        shell = Block(("",), block.images, block.source, block.kind)
        return len(self._build_one(Conversation.from_blocks([(role, shell)], message_count), policy)) - overhead

    def _pieces(self, text: str, budget: int) -> list[tuple[str, int]]:
        """``text`` cut into (piece, token count) of at most ``budget`` tokens, consecutive pieces overlapping."""
        offsets = self._plain.encode(text, add_special_tokens=False).offsets
        if not offsets:
            return [(text, 0)]
        overlap = min(256, budget // 4)
        pieces = []
        start = 0
        while True:
            end = min(start + budget, len(offsets))
            pieces.append((text[offsets[start][0] : offsets[end - 1][1]], end - start))
            if end == len(offsets):
                return pieces
            start = end - overlap

    def _build_one(self, conversation: Conversation, policy: Policy) -> Prompt:
        ids = self.ids
        role = conversation.checked_role
        has_images = conversation.has_images
        pixel_values, image_ids, tiles = self._image_inputs(conversation.images) if has_images else (None, [], ())
        b = _Builder()
        b.control([ids[BEGIN_OF_TEXT], ids[HEADER_START]])
        b.text("user")
        b.control([ids[HEADER_END]])
        b.text(task_text(role, policy.categories(has_images=has_images)))
        prefix_pieces = len(b.pieces)
        next_image = 0
        for turn in conversation.turns:
            for block in turn.blocks:
                for j, text in enumerate(block.texts):
                    b.text(f"{turn.role}: ")
                    if j == 0:
                        for _ in block.images:
                            b.control(image_ids[next_image], image=True)
                            next_image += 1
                    b.text(text.strip(), content=True)
                    b.text(MESSAGE_END)
        b.text(instruction_text(role))
        b.control([ids[EOT], ids[HEADER_START]])
        b.text("assistant")
        b.control([ids[HEADER_END]])
        input_ids, spans, image_spans = self._tokenize(b)
        prefix = _Builder(pieces=b.pieces[:prefix_pieces])
        prefix_ids, _, _ = self._tokenize(prefix)
        prefix_length = len(prefix_ids) if tuple(input_ids[: len(prefix_ids)]) == tuple(prefix_ids) else 0
        return Prompt(
            input_ids=tuple(input_ids),
            images=tuple(conversation.images),
            prefix_length=prefix_length,
            content_spans=tuple(spans),
            checked_role=role,
            checked_message_index=conversation.checked_message_index,
            has_images=has_images,
            pixel_values=pixel_values,
            image_spans=tuple(image_spans),
            image_tiles=tiles,
        )

    def _tokenize(self, builder: _Builder) -> tuple[list[int], list[tuple[int, int]], list[tuple[int, int]]]:
        """(ids, token spans of the content, token spans of the images)."""
        runs = builder.runs()
        texts = [run[1] for run in runs if run[0] == "run"]
        encodings = iter(self._plain.encode_batch(texts, add_special_tokens=False)) if texts else iter(())
        input_ids: list[int] = []
        spans: list[tuple[int, int]] = []
        image_spans: list[tuple[int, int]] = []
        for run in runs:
            if run[0] == "ids":
                if run[2]:
                    image_spans.append((len(input_ids), len(input_ids) + len(run[1])))
                input_ids.extend(run[1])
                continue
            encoding = next(encodings)
            base = len(input_ids)
            if run[2]:
                offsets = encoding.offsets  # read once: each access copies the whole list
                starts = [start for start, _ in offsets]
                ends = [end for _, end in offsets]
                for char_start, char_end in run[2]:
                    # tokens overlapping [char_start, char_end): end > char_start and start < char_end
                    first = bisect.bisect_right(ends, char_start)
                    last = bisect.bisect_left(starts, char_end)
                    if char_end > char_start and first < last:
                        spans.append((base + first, base + last))
            input_ids.extend(encoding.ids)
        return input_ids, spans, image_spans

    # -- images -----------------------------------------------------------------------------------

    def pixel_values(self, images: Sequence[Image.Image]) -> tuple[Any, list[tuple[int, int]]]:
        """Pixel tiles for ``images`` (all tiles, in order) and each image's tile grid."""
        if self._image_processor is None:
            raise InvalidConversationError("this guard was loaded without an image processor; images cannot be checked")
        out = self._image_processor(images=list(images), return_tensors="pt")
        return out["pixel_values"], [tuple(int(x) for x in r) for r in out["aspect_ratios"]]

    def _image_inputs(self, images: Sequence[Image.Image]) -> tuple[Any, list[list[int]], tuple[int, ...]]:
        """Pixel tiles, each image's token ids and each image's number of tiles (its grid, plus a global view
        when the grid has more than one tile)."""
        pixels, grids = self.pixel_values(images)
        height, width = pixels.shape[-2:]
        per_tile = (height // self._patch_size) * (width // self._patch_size) // self._downsample
        tiles = tuple(rows * cols + (1 if rows * cols > 1 else 0) for rows, cols in grids)
        return pixels, [self._image_tokens(grid, per_tile) for grid in grids], tiles

    def _image_tokens(self, grid: tuple[int, int], per_tile: int) -> list[int]:
        """The processor's image expansion: tiles (if more than one), then the global view."""
        ids = self.ids
        out = [ids[IMAGE_START]]
        rows, cols = grid
        if rows * cols > 1:
            for _ in range(rows):
                for x in range(cols):
                    out.extend([ids[PATCH]] * per_tile)
                    if x < cols - 1:
                        out.append(ids[TILE_X])
                out.append(ids[TILE_Y])
        out.append(ids[IMAGE])
        out.extend([ids[PATCH]] * per_tile)
        out.append(ids[IMAGE_END])
        return out


#: Trimming drops tokens in steps of ``max_tokens // TRIM_STEPS`` (see :func:`trim_limit`).
TRIM_STEPS = 4


def trim_limit(total: int, max_tokens: int) -> int:
    """The length a prompt of ``total`` tokens (over ``max_tokens``) is trimmed to: oldest messages are dropped
    until it fits this, a watermark between ``max_tokens - step`` and ``max_tokens``.

    Stateless hysteresis: the tokens to drop, ``total - max_tokens``, are rounded up to a multiple of the step
    (a quarter of ``max_tokens``). As a conversation grows at its end, the prompt trimmed from its beginning
    keeps the same first kept message (the cut depends on the oldest messages' lengths and that multiple only)
    until another step's worth of tokens has arrived: the next checks share the trimmed beginning, and its KV,
    instead of losing one more message at every turn. The same conversation always gives the same prompt.
    """
    step = max(1, max_tokens // TRIM_STEPS)
    return total - -(-(total - max_tokens) // step) * step


def _block_starts(prompt: Prompt, blocks: Sequence[tuple[Role, Block]]) -> list[int]:
    """About where each block starts in ``prompt`` (tokens): where the content before it ends."""
    starts, spans, position = [], 0, prompt.prefix_length
    for _, block in blocks:
        starts.append(position)
        spans += sum(1 for text in block.texts if text.strip())  # each non-empty text has one content span
        if spans and spans <= len(prompt.content_spans):
            position = prompt.content_spans[spans - 1][1]
    return starts


def _history_key(role: Role, blocks: Sequence[Block], policy: Policy, max_tokens: int) -> bytes | None:
    """A digest of what decides a role's history windows; ``None`` when a block has images (not memoized)."""
    if any(block.images for block in blocks):
        return None
    digest = hashlib.blake2b(f"{role}|{max_tokens}|{policy.model_dump_json()}".encode(), digest_size=24)
    for block in blocks:
        digest.update(f"|{block.source}|{block.kind}|{len(block.texts)}".encode())
        for text in block.texts:
            data = text.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    return digest.digest()


V = TypeVar("V")


class _Memo(Generic[V]):
    """A small thread-safe LRU."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[bytes, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: bytes, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def _torch_uint8() -> Any:
    import torch  # present whenever a processor made pixel tiles

    return torch.uint8


def _sources(blocks: Sequence[tuple[Role, Block]]) -> tuple[int, ...]:
    return tuple(sorted({block.source for _, block in blocks}))
