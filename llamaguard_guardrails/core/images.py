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
its own image, in order.

**Bounds.** At most :data:`MAX_PIXELS` pixels per reference (all frames together), checked from the
headers before any pixel is decoded, and at most :data:`MAX_IMAGES` images per conversation (frames
count); over that, :class:`TooManyImagesError`. Every decoding failure is an :class:`InvalidImageError`.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError, TooManyImagesError

#: The only formats Pillow may decode (its format ids), in the order it tries them.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"

#: Decompression-bomb guard, per image reference and all its frames together: 64 megapixels is far
#: beyond what Llama Guard 4 looks at (16 tiles of 336 px).
MAX_PIXELS = 64_000_000

#: Images per conversation, each frame of an animation or page of a TIFF counting as one.
MAX_IMAGES = 32

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})

_LOCAL_REFUSED = (
    "image strings are never opened as local files (paths and file:// URLs are refused); send the image as "
    "a data URL ('data:image/png;base64,...') or base64, or pass a pathlib.Path from the application's "
    "code (LlamaGuard(allow_local_image_paths=True) opens path strings for trusted input)"
)

# Image modes with more than 8 bits per sample: scaled to 8 bits, never clipped.
_WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


class ImageReader:
    """Reads the image parts of one conversation, counting them (frames included) against :data:`MAX_IMAGES`."""

    def __init__(self, *, allow_local_paths: bool = False) -> None:
        self.allow_local_paths = allow_local_paths
        self.count = 0

    def read(self, ref: Any, where: str) -> list[Image.Image]:
        """Every frame of ``ref`` as an RGB image (see :func:`load_images`)."""
        room = MAX_IMAGES - self.count
        images = load_images(ref, where, allow_local_paths=self.allow_local_paths, max_frames=room)
        self.count += len(images)
        return images


_READER: ContextVar[ImageReader | None] = ContextVar("llamaguard_image_reader", default=None)


@contextmanager
def image_reader(*, allow_local_paths: bool = False) -> Iterator[ImageReader]:
    """The reader :func:`read_image_part` uses inside this block (one conversation being parsed)."""
    reader = ImageReader(allow_local_paths=allow_local_paths)
    token = _READER.set(reader)
    try:
        yield reader
    finally:
        _READER.reset(token)


def read_image_part(ref: Any, where: str) -> list[Image.Image]:
    """The frames of one image part, read by the current :func:`image_reader` (untrusted defaults outside one)."""
    return (_READER.get() or ImageReader()).read(ref, where)


def load_images(
    ref: Any, where: str, *, allow_local_paths: bool = False, max_frames: int | None = None
) -> list[Image.Image]:
    """Every frame of ``ref`` as the RGB image a viewer shows; ``where`` names the part in errors.

    ``ref`` is bytes, base64 text, a data URL, a PIL image or a :class:`pathlib.Path`; path strings
    and ``file://`` URLs only with ``allow_local_paths``. More than ``max_frames`` frames (default
    :data:`MAX_IMAGES`) is a :class:`TooManyImagesError`.
    """
    limit = MAX_IMAGES if max_frames is None else max_frames
    if isinstance(ref, Image.Image):
        return _frames(ref, where, limit)
    if isinstance(ref, (bytes, bytearray, memoryview)):
        return _decode(bytes(ref), where, limit)
    if isinstance(ref, os.PathLike):
        return _decode(_read_path(Path(os.fspath(ref)), where), where, limit)
    if isinstance(ref, str):
        return _decode(_string_bytes(ref, where, allow_local_paths), where, limit)
    raise InvalidImageError(
        f"{where}: unsupported image value of type {type(ref).__name__}; "
        "pass a data URL, base64 text, bytes, a PIL image or a pathlib.Path"
    )


# -- where the bytes come from -----------------------------------------------------------------------


def _string_bytes(text: str, where: str, allow_local_paths: bool) -> bytes:
    text = text.strip()
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if ";base64" not in header or not payload:
            raise InvalidImageError(f"{where}: data URL must be 'data:image/<type>;base64,<data>'")
        return _b64(payload, where)
    if text.lower().startswith(("http://", "https://")):
        raise InvalidImageError(
            f"{where}: remote image URLs are not fetched by the guard (no network access, no SSRF); "
            "download the image and pass bytes or a data URL"
        )
    if allow_local_paths:
        if text.lower().startswith("file://"):
            return _read_path(Path(text[len("file://") :]), where)
        if _looks_like_path(text) and (_has_path_syntax(text) or os.path.exists(text)):
            return _read_path(Path(text).expanduser(), where)
    elif text.lower().startswith("file:"):
        raise InvalidImageError(f"{where}: {_LOCAL_REFUSED}")
    try:
        return _b64(text, where)
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


def _b64(payload: str, where: str) -> bytes:
    try:
        return base64.b64decode("".join(payload.split()), validate=True)  # line-wrapped base64 is fine
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"{where}: invalid base64 image data ({exc})") from exc


def _read_path(path: Path, where: str) -> bytes:
    """Trusted callers only (a ``Path`` from code, or ``allow_local_paths``)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidImageError(f"{where}: image file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise InvalidImageError(f"{where}: image file {str(path)!r} cannot be read ({exc.strerror})") from None


# -- decoding ----------------------------------------------------------------------------------------


def _decode(data: bytes, where: str, max_frames: int) -> list[Image.Image]:
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
        return _frames(image, where, max_frames)


def _frames(image: Image.Image, where: str, max_frames: int) -> list[Image.Image]:
    """Every frame as a viewer's RGB image; sizes and counts are checked before a frame is decoded."""
    try:
        count = getattr(image, "n_frames", 1)
        if count > max(max_frames, 0):
            raise TooManyImagesError(
                f"{where}: {count} more image(s) would exceed the limit of {MAX_IMAGES} images per conversation "
                "(each frame of an animation and each page of a TIFF counts); send fewer images or frames, "
                "or check the conversation in parts"
            )
        start = image.tell() if count > 1 else 0
        _check_pixels(image, count * image.width * image.height, count, where)  # from the header alone
        frames, pixels = [], 0
        for index in range(count):
            if count > 1:
                image.seek(index)  # frames of a TIFF may differ in size: re-checked before each is decoded
            pixels += image.width * image.height
            _check_pixels(image, pixels, count, where)
            frames.append(viewer_rgb(image))
        if count > 1:
            image.seek(start)  # a caller's PIL image is left on the frame it was on
        return frames
    except InvalidImageError:
        raise
    except Exception as exc:  # truncated data, bad EXIF, unsupported mode: all bad images
        raise InvalidImageError(f"{where}: image could not be decoded ({type(exc).__name__}: {exc})") from exc


def _check_pixels(image: Image.Image, pixels: int, count: int, where: str) -> None:
    if pixels > MAX_PIXELS:
        frames = f" with {count} frames" if count > 1 else ""
        raise InvalidImageError(
            f"{where}: image is {image.width}x{image.height}{frames}, larger than {MAX_PIXELS} pixels"
        )


def viewer_rgb(image: Image.Image) -> Image.Image:
    """The current frame of ``image`` as the RGB picture a viewer shows.

    EXIF orientation applied; more than 8 bits per sample scaled to 8 (not clipped); transparency
    composited onto white exactly as ``transformers.image_transforms.convert_to_rgb`` does.
    """
    image = ImageOps.exif_transpose(image)  # a detached copy, decoded
    if image.mode in _WIDE_MODES:
        image = _wide_to_8bit(image)
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


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
