"""Turning image references into the RGB pictures a person would see, safely.

**Where a reference may point.** Bytes, base64 text and ``data:`` URLs are read from memory. Strings are
never opened as files: a path-like string or a ``file://`` URL is an :class:`InvalidImageError` whose
message does not depend on whether the file exists (the guard never looks), because strings arrive
from clients. A :class:`pathlib.Path` (any ``os.PathLike``) is put there by the application's own
code and is opened. ``allow_local_paths=True`` (``LlamaGuard(allow_local_image_paths=True)``) opens
path strings and ``file://`` URLs too, for deployments whose messages never come from a client.
Remote ``http(s)`` URLs are always refused: the guard fetches nothing.

**Which decoders run.** Only :data:`ALLOWED_FORMATS`: PNG (APNG included), JPEG (MPO included), WebP,
GIF, BMP and TIFF - the formats chat clients and cameras send, all decoded in-process by Pillow's
own code or its bundled libraries. PostScript/EPS (Pillow hands it to Ghostscript), PDF, SVG, ICNS,
JPEG 2000, AVIF and every other format are refused: a guard that parses hostile input never starts an
external program, and each extra decoder is attack surface no chat image needs.

**The same pixels a viewer sees.** EXIF orientation is applied; transparency is composited onto
white exactly as Hugging Face's ``convert_to_rgb`` does; 16-bit and 32-bit greyscale is scaled to
8 bits instead of being clipped; every frame of an animation or page of a multi-page TIFF becomes
its own image, in order. Where viewers and model pipelines disagree (transparency, wide greyscale),
each of their pictures is an image too (:func:`renders`): the guard cannot know which one the model gets.

**Bounds, per conversation and per image** (:class:`ImageLimits`; defaults below, configurable with
``LlamaGuard(image_limits=...)``). Llama Guard 4 sees at most 16 tiles of 336 px per image (about 1.8
megapixels); anything larger is only scaled down, so the defaults leave a wide margin and no more:
:data:`MAX_PIXELS` pixels per image (all its frames together), :data:`MAX_TOTAL_PIXELS` pixels over all
images of a conversation, :data:`MAX_IMAGE_BYTES` bytes of encoded image data per conversation and at most
:data:`MAX_IMAGES` images (each frame, and each picture of :func:`renders`, counts; over that,
:class:`TooManyImagesError`). Sizes and frame counts are read from the headers and the encoded size from the
text's length before anything is decoded, so a request is refused before it decodes anything beyond its budget
(a frame's extra pictures are charged before each is made). Every decoding failure is an
:class:`InvalidImageError`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError, TooManyImagesError

#: The only formats Pillow may decode (its format ids), in the order it tries them.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"

#: Pixels per image reference, all its frames together (decompression bombs): 40 megapixels, over 20 times
#: what Llama Guard 4 looks at (16 tiles of 336 px); 12 MP phone photos and 8K screenshots pass.
MAX_PIXELS = 40_000_000

#: Pixels over every image and frame of one conversation (decoding costs about 12 bytes per pixel at its peak).
MAX_TOTAL_PIXELS = 48_000_000

#: Bytes of encoded image data (after base64) per conversation.
MAX_IMAGE_BYTES = 64 * 1024 * 1024

#: Images per conversation, each frame of an animation or page of a TIFF counting as one.
MAX_IMAGES = 32


@dataclass(frozen=True)
class ImageLimits:
    """What one conversation's images may cost; ``None`` fields take the module defaults when read.

    ``max_images``: images, frames included; ``max_pixels``: per image, its frames together;
    ``max_total_pixels``: over all images; ``max_bytes``: encoded bytes over all images.
    """

    max_images: int | None = None
    max_pixels: int | None = None
    max_total_pixels: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_images", "max_pixels", "max_total_pixels", "max_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(
                    f"ImageLimits.{name} must be a whole number >= 0 (or None: the default), got {value!r}"
                )

    def resolved(self) -> ImageLimits:
        """These limits with every ``None`` replaced by the module default of now."""
        return ImageLimits(
            MAX_IMAGES if self.max_images is None else self.max_images,
            MAX_PIXELS if self.max_pixels is None else self.max_pixels,
            MAX_TOTAL_PIXELS if self.max_total_pixels is None else self.max_total_pixels,
            MAX_IMAGE_BYTES if self.max_bytes is None else self.max_bytes,
        )


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})

_LOCAL_REFUSED = (
    "image strings are never opened as local files (paths and file:// URLs are refused); send the image as "
    "a data URL ('data:image/png;base64,...') or base64, or pass a pathlib.Path from the application's "
    "code (LlamaGuard(allow_local_image_paths=True) opens path strings for trusted input)"
)

# Image modes with more than 8 bits per sample: scaled to 8 bits, never clipped.
_WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})

_ORIENTATION = 0x0112  # the EXIF orientation tag
_MIRRORED_OR_UPSIDE_DOWN = frozenset({2, 3, 4, 5, 7})  # orientations whose stored picture a model also gets


class ImageReader:
    """Reads the image parts of one conversation, charging each to the conversation's budget (:class:`ImageLimits`)."""

    def __init__(self, *, allow_local_paths: bool = False, limits: ImageLimits | None = None) -> None:
        self.allow_local_paths = allow_local_paths
        self.limits = (limits or ImageLimits()).resolved()
        self.count = 0
        self.pixels = 0
        self.bytes = 0

    def read(self, ref: Any, where: str) -> list[Image.Image]:
        """Every frame of ``ref`` as an RGB image (see :func:`load_images`)."""
        images = load_images(ref, where, allow_local_paths=self.allow_local_paths, budget=self)
        self.count += len(images)
        return images

    def charge_bytes(self, size: int, where: str) -> None:
        """Count ``size`` encoded bytes, refusing them (before they are decoded) past the budget."""
        if self.bytes + size > self.limits.max_bytes:
            raise InvalidImageError(
                f"{where}: {size} bytes of image data would exceed the limit of {self.limits.max_bytes} bytes of "
                f"images per conversation ({self.bytes} used); send smaller images (Llama Guard 4 looks at "
                "16 tiles of 336 px at most), or check the conversation in parts"
            )
        self.bytes += size

    def charge_pixels(self, pixels: int, new: int, count: int, image: Image.Image, where: str) -> None:
        """Count ``new`` more pixels of one reference (``pixels`` so far, read from headers), refusing them past
        the per-image or the per-conversation budget before they are decoded."""
        frames = f" with {count} frames" if count > 1 else ""
        if pixels > self.limits.max_pixels:
            raise InvalidImageError(
                f"{where}: image is {image.width}x{image.height}{frames}, larger than {self.limits.max_pixels} "
                "pixels; scale it down (Llama Guard 4 looks at 16 tiles of 336 px at most)"
            )
        if self.pixels + new > self.limits.max_total_pixels:
            raise InvalidImageError(
                f"{where}: image is {image.width}x{image.height}{frames}, which would exceed the limit of "
                f"{self.limits.max_total_pixels} pixels of images per conversation ({self.pixels} used); send "
                "smaller or fewer images, or check the conversation in parts"
            )
        self.pixels += new

    def room(self) -> int:
        """How many more images (frames) this conversation may hold."""
        return self.limits.max_images - self.count


_READER: ContextVar[ImageReader | None] = ContextVar("llamaguard_image_reader", default=None)


@contextmanager
def image_reader(*, allow_local_paths: bool = False, limits: ImageLimits | None = None) -> Iterator[ImageReader]:
    """The reader :func:`read_image_part` uses inside this block (one conversation being parsed)."""
    reader = ImageReader(allow_local_paths=allow_local_paths, limits=limits)
    token = _READER.set(reader)
    try:
        yield reader
    finally:
        _READER.reset(token)


def read_image_part(ref: Any, where: str) -> list[Image.Image]:
    """The frames of one image part, read by the current :func:`image_reader` (untrusted defaults outside one)."""
    return (_READER.get() or ImageReader()).read(ref, where)


def load_images(
    ref: Any,
    where: str,
    *,
    allow_local_paths: bool = False,
    max_frames: int | None = None,
    budget: ImageReader | None = None,
) -> list[Image.Image]:
    """Every frame of ``ref`` as the RGB image a viewer shows; ``where`` names the part in errors.

    ``ref`` is bytes, base64 text, a data URL, a PIL image or a :class:`pathlib.Path`; path strings
    and ``file://`` URLs only with ``allow_local_paths``. ``budget``: the conversation's reader, charged
    for the bytes, pixels and frames (default: a fresh one, the default :class:`ImageLimits`); more
    frames than it (or ``max_frames``) has room for is a :class:`TooManyImagesError`.
    """
    budget = budget or ImageReader(allow_local_paths=allow_local_paths)
    limit = budget.room() if max_frames is None else min(max_frames, budget.room())
    if isinstance(ref, Image.Image):
        return _frames(ref, where, limit, budget)
    if isinstance(ref, (bytes, bytearray, memoryview)):
        budget.charge_bytes(len(ref), where)
        return _decode(bytes(ref), where, limit, budget)
    if isinstance(ref, os.PathLike):
        return _decode(_read_path(Path(os.fspath(ref)), where, budget), where, limit, budget)
    if isinstance(ref, str):
        return _decode(_string_bytes(ref, where, allow_local_paths, budget), where, limit, budget)
    raise InvalidImageError(
        f"{where}: unsupported image value of type {type(ref).__name__}; "
        "pass a data URL, base64 text, bytes, a PIL image or a pathlib.Path"
    )


# -- where the bytes come from -----------------------------------------------------------------------


def _string_bytes(text: str, where: str, allow_local_paths: bool, budget: ImageReader) -> bytes:
    text = text.strip()
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if ";base64" not in header or not payload:
            raise InvalidImageError(f"{where}: data URL must be 'data:image/<type>;base64,<data>'")
        return _b64(payload, where, budget)
    if text.lower().startswith(("http://", "https://")):
        raise InvalidImageError(
            f"{where}: remote image URLs are not fetched by the guard (no network access, no SSRF); "
            "download the image and pass bytes or a data URL"
        )
    if allow_local_paths:
        if text.lower().startswith("file://"):
            return _read_path(Path(text[len("file://") :]), where, budget)
        if _looks_like_path(text) and (_has_path_syntax(text) or os.path.exists(text)):
            return _read_path(Path(text).expanduser(), where, budget)
    elif text.lower().startswith("file:"):
        raise InvalidImageError(f"{where}: {_LOCAL_REFUSED}")
    try:
        return _b64(text, where, budget)
    except InvalidImageError:
        if _looks_like_path(text):  # decided from the text alone: the file system is never consulted
            raise InvalidImageError(f"{where}: {_LOCAL_REFUSED}") from None
        raise InvalidImageError(
            f"{where}: a string of {len(text)} characters is neither a data URL nor base64 image data"
        ) from None


def _looks_like_path(text: str) -> bool:
    return len(text) <= 4096 and (_has_path_syntax(text) or os.sep in text or "/" in text or "\\" in text)


def _has_path_syntax(text: str) -> bool:
    return (
        Path(text).suffix.lower() in IMAGE_SUFFIXES
        or text.startswith(("./", "../", "~", ".\\", "..\\"))
        or (len(text) > 2 and text[1] == ":" and text[2] in "\\/")  # C:\ or C:/
    )


def _b64(payload: str, where: str, budget: ImageReader) -> bytes:
    budget.charge_bytes(len(payload) * 3 // 4, where)  # about the decoded size, refused before decoding
    try:
        return base64.b64decode("".join(payload.split()), validate=True)  # line-wrapped base64 is fine
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"{where}: invalid base64 image data ({exc})") from exc


def _read_path(path: Path, where: str, budget: ImageReader) -> bytes:
    """Trusted callers only (a ``Path`` from code, or ``allow_local_paths``); the size is charged before reading."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            budget.charge_bytes(size, where)
            return handle.read(size + 1)  # a file that grew since is read only as far as was charged (+1: seen)
    except FileNotFoundError:
        raise InvalidImageError(f"{where}: image file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise InvalidImageError(f"{where}: image file {str(path)!r} cannot be read ({exc.strerror})") from None


# -- decoding ----------------------------------------------------------------------------------------


def _decode(data: bytes, where: str, max_frames: int, budget: ImageReader) -> list[Image.Image]:
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)  # reads the header only
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"{where}: not a readable image: not {_FORMAT_NAMES} data (other formats, such as EPS, PDF or "
            "SVG, are refused)"
        ) from None
    except Exception as exc:  # any failure to read a header is a bad image
        raise InvalidImageError(f"{where}: not a readable image ({type(exc).__name__}: {exc})") from exc
    with image:
        return _frames(image, where, max_frames, budget)


def _frames(image: Image.Image, where: str, max_frames: int, budget: ImageReader) -> list[Image.Image]:
    """Every frame's renders (:func:`renders`); sizes and counts are checked before a frame is decoded, and a frame's
    extra renders are counted against the conversation's images and pixels."""
    try:
        count = getattr(image, "n_frames", 1)
        if count > max(max_frames, 0):
            raise _too_many(count, budget, where)
        start = image.tell() if count > 1 else 0
        charged, frames, pixels = count * image.width * image.height, [], 0
        budget.charge_pixels(charged, charged, count, image, where)  # from the header alone
        for index in range(count):
            if count > 1:
                image.seek(index)  # frames of a TIFF may differ in size: re-checked before each is decoded
            pixels += image.width * image.height
            if pixels > charged:  # a larger page than the first: charged before it is decoded
                budget.charge_pixels(pixels, pixels - charged, count, image, where)
                charged = pixels
            shown = renders(
                image, charge=functools.partial(budget.charge_pixels, charged, count=count, image=image, where=where)
            )
            if len(frames) + len(shown) + count - index - 1 > max(max_frames, 0):  # extra pictures are images too
                raise _too_many(len(frames) + len(shown) + count - index - 1, budget, where)
            frames.extend(shown)
        if count > 1:
            image.seek(start)  # a caller's PIL image is left on the frame it was on
        return frames
    except InvalidImageError:
        raise
    except Exception as exc:  # truncated data, bad EXIF, unsupported mode: all bad images
        raise InvalidImageError(f"{where}: image could not be decoded ({type(exc).__name__}: {exc})") from exc


def _too_many(count: int, budget: ImageReader, where: str) -> TooManyImagesError:
    return TooManyImagesError(
        f"{where}: {count} more image(s) would exceed the limit of {budget.limits.max_images} images per "
        "conversation (each frame of an animation, each page of a TIFF and each picture of a transparent or "
        "16-bit image counts); send fewer images or frames, or check the conversation in parts"
    )


def renders(image: Image.Image, charge: Callable[[int], None] | None = None) -> list[Image.Image]:
    """Every distinct RGB picture that a viewer or a model's image pipeline makes of the current frame of ``image``.

    An opaque 8-bit image has one. Where decoders disagree about the pixels, the guard is shown each picture, since
    it cannot know which one the model gets: transparency composited on white (a light viewer, Hugging Face's
    ``convert_to_rgb``), on black (a dark-mode viewer) and ignored (Pillow's ``convert("RGB")``, stb_image /
    llama.cpp: the colours under transparent pixels); 16/32-bit and float greyscale scaled to 8 bits (a viewer)
    and clipped (Pillow's conversion, so every pipeline built on it); an EXIF orientation that mirrors or turns
    the picture upside down applied (a viewer) and ignored (a pipeline handed the decoded image: the model reads
    the right way round a text the guard saw mirrored or upside down). A quarter turn (orientations 6 and 8, what
    a camera writes for every portrait photo) is only applied: sideways text stays legible, and a second picture
    of every such photo would halve how many fit in a prompt. The first picture is :func:`viewer_rgb`'s.

    ``charge(pixels)`` is called before each picture after the first is made (it may raise to refuse it).
    """
    shown: list[Image.Image] = []
    for picture in _candidates(image, lambda: charge(image.width * image.height) if charge and shown else None):
        if not any(_same(picture, other) for other in shown):
            shown.append(picture)
    return shown


def _candidates(image: Image.Image, before_next: Callable[[], None]) -> Iterator[Image.Image]:
    """The pictures of :func:`renders`, made one at a time (``before_next`` is called before each)."""
    views = [ImageOps.exif_transpose(image)]  # a detached copy, decoded
    if image.getexif().get(_ORIENTATION, 1) in _MIRRORED_OR_UPSIDE_DOWN:
        views.append(image)  # as stored
    for view in views:
        for source in [_wide_to_8bit(view), view] if view.mode in _WIDE_MODES else [view]:
            yield from _backgrounds(source, before_next)


def _backgrounds(image: Image.Image, before_next: Callable[[], None]) -> Iterator[Image.Image]:
    """``image`` as RGB: alone when opaque; else composited on white, on black, and with transparency ignored."""
    if not (set(image.getbands()) & {"A", "a"} or image.info.get("transparency") is not None):
        before_next()
        yield image.convert("RGB")
        return
    rgba = image.convert("RGBA")
    if rgba.getchannel("A").getextrema() == (255, 255):
        before_next()
        yield rgba.convert("RGB")
        return
    for level in (255, 0):
        before_next()
        yield Image.alpha_composite(Image.new("RGBA", rgba.size, (level, level, level, 255)), rgba).convert("RGB")
    before_next()
    yield rgba.convert("RGB")  # the colours, alpha dropped


def _same(one: Image.Image, other: Image.Image) -> bool:
    return one.size == other.size and np.array_equal(np.asarray(one), np.asarray(other))


def viewer_rgb(image: Image.Image) -> Image.Image:
    """The current frame of ``image`` as the RGB picture a (light) viewer shows: the first of :func:`renders`.

    EXIF orientation applied; more than 8 bits per sample scaled to 8 (not clipped); transparency
    composited onto white exactly as ``transformers.image_transforms.convert_to_rgb`` does.
    """
    return renders(image)[0]


def _wide_to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale as 8-bit ``L`` (``LA`` when a value is transparent).

    16-bit modes map 0..65535 onto 0..255. ``I`` and ``F`` keep values already in 0..255, scale
    0..65535 (and ``F`` in 0..1) to 0..255, and stretch any other range onto 0..255.
    """
    values = np.asarray(image).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16"):
        scaled = values / 257.0
    elif image.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif low >= 0.0 and high <= 255.0:
        scaled = values
    elif low >= 0.0 and high <= 65535.0:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / (high - low))
    grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")
    transparent = image.info.get("transparency")
    if isinstance(transparent, (int, float)):
        alpha = np.where(np.asarray(image) == transparent, 0, 255).astype(np.uint8)
        grey.putalpha(Image.fromarray(alpha, "L"))
    return grey
