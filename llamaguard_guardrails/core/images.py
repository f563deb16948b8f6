"""Turning image references (path, data URL, base64, bytes, PIL image) into RGB PIL images."""

from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from .errors import InvalidImageError

# Decompression-bomb guard: 64 megapixels is far beyond what Llama Guard 4 looks at (16 tiles of 336 px).
MAX_PIXELS = 64_000_000


def load_image(ref: Any, where: str) -> Image.Image:
    """Load ``ref`` as an RGB image; ``where`` names the message part in error messages."""
    if isinstance(ref, Image.Image):
        image = ref
    elif isinstance(ref, (bytes, bytearray, memoryview)):
        image = _open_bytes(bytes(ref), where)
    elif isinstance(ref, Path):
        image = _open_path(ref, where)
    elif isinstance(ref, str):
        image = _open_string(ref, where)
    else:
        raise InvalidImageError(
            f"{where}: unsupported image value of type {type(ref).__name__}; "
            "pass a file path, a data URL, base64 text, bytes or a PIL image"
        )
    if image.width * image.height > MAX_PIXELS:
        raise InvalidImageError(f"{where}: image is {image.width}x{image.height}, larger than {MAX_PIXELS} pixels")
    try:
        return image.convert("RGB")
    except OSError as exc:
        raise InvalidImageError(f"{where}: image could not be decoded ({exc})") from exc


def _open_string(text: str, where: str) -> Image.Image:
    text = text.strip()
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if ";base64" not in header or not payload:
            raise InvalidImageError(f"{where}: data URL must be 'data:image/<type>;base64,<data>'")
        return _open_bytes(_b64(payload, where), where)
    if text.startswith(("http://", "https://")):
        raise InvalidImageError(
            f"{where}: remote image URLs are not fetched by the guard (no network access, no SSRF); "
            "download the image and pass bytes, a file path or a data URL"
        )
    if text.startswith("file://"):
        return _open_path(Path(text[len("file://") :]), where)
    if _looks_like_path(text):
        return _open_path(Path(text).expanduser(), where)
    try:
        data = _b64(text, where)
    except InvalidImageError:
        raise InvalidImageError(
            f"{where}: {text[:60]!r} is neither an existing file, a data URL nor base64 image data"
        ) from None
    return _open_bytes(data, where)


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})


def _looks_like_path(text: str) -> bool:
    if len(text) > 4096:
        return False
    return (
        Path(text).suffix.lower() in IMAGE_SUFFIXES
        or text.startswith(("./", "../", "~/"))
        or (os.sep in text and os.path.exists(text))
    )


def _b64(payload: str, where: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"{where}: invalid base64 image data ({exc})") from exc


def _open_path(path: Path, where: str) -> Image.Image:
    if not path.is_file():
        raise InvalidImageError(f"{where}: image file {str(path)!r} does not exist")
    return _open_bytes(path.read_bytes(), where)


def _open_bytes(data: bytes, where: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        if image.width * image.height > MAX_PIXELS:
            raise InvalidImageError(f"{where}: image is {image.width}x{image.height}, larger than {MAX_PIXELS} pixels")
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"{where}: not a readable image ({exc})") from exc
    return image
