"""Images as a person sees them: the guard's pixel tiles equal the official processor's on the viewer's picture.

Each case encodes a known picture (what a viewer shows) in one mode or container - alpha, palette
transparency, 16/32-bit and float greyscale, CMYK, EXIF orientation, animations and multi-page TIFF -
and compares the ``pixel_values`` the guard builds from the encoded bytes with those of transformers'
own Llama 4 image processor (the test model's) given the viewer's pictures. Where the old conversion
(``convert("RGB")`` of the first frame) showed the model something else, the test says so, so each
case is known to matter.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from llamaguard_guardrails import InvalidImageError, LlamaGuard, TooManyImagesError, parse_conversation
from llamaguard_guardrails.core import images as images_module
from llamaguard_guardrails.core.images import ALLOWED_FORMATS, load_images

from conftest import make_image, png_bytes

pytestmark = pytest.mark.smoke  # also run on the newest releases (.ci/run)

W, H = 90, 60  # wider than high: a missed or wrong rotation changes the tiles


def viewer_picture(seed: int = 0, levels: tuple[int, ...] = (0, 255)) -> Image.Image:
    """A greyscale picture (as RGB) using only ``levels``: shapes a model must see, asymmetric in both axes."""
    dark, light = levels[0], levels[-1]
    picture = Image.new("L", (W, H), light)
    draw = ImageDraw.Draw(picture)
    draw.rectangle((4 + 9 * seed, 5, 30 + 9 * seed, 22), fill=dark)
    draw.ellipse((50, 28 - 4 * seed, 80, 55 - 4 * seed), fill=levels[len(levels) // 2])
    draw.line((0, H - 1, W // 3, 30), fill=dark, width=3)
    return picture.convert("RGB")


def grey(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("L"))


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# -- the corpus: (bytes, the pictures a viewer shows) -------------------------------------------------


def rgba_drawn_in_alpha() -> tuple[bytes, list[Image.Image]]:
    """Black everywhere; the picture lives only in the alpha channel (composited on white it appears)."""
    view = viewer_picture()
    rgba = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    rgba.putalpha(Image.fromarray(255 - grey(view)))
    return encode(rgba, "PNG"), [view]


def la_drawn_in_alpha() -> tuple[bytes, list[Image.Image]]:
    view = viewer_picture()
    la = Image.merge("LA", (Image.new("L", (W, H), 0), Image.fromarray(255 - grey(view))))
    return encode(la, "PNG"), [view]


def palette_with_transparency(fmt: str) -> Callable[[], tuple[bytes, list[Image.Image]]]:
    """Index 0 is a transparent green background, index 1 black: a viewer shows black on white."""

    def build() -> tuple[bytes, list[Image.Image]]:
        view = viewer_picture()
        indices = (grey(view) == 0).astype(np.uint8)
        image = Image.fromarray(indices, "L").convert("P")
        image.putpalette([20, 200, 40, 0, 0, 0] + [0] * 762)
        return encode(image, fmt, transparency=0), [view]

    return build


def sixteen_bit_grey() -> tuple[bytes, list[Image.Image]]:
    """16-bit greyscale PNG: 8-bit levels times 257, so the viewer's 8-bit picture is exact."""
    view = viewer_picture(levels=(0, 120, 255))
    deep = Image.fromarray(grey(view).astype(np.uint16) * 257)
    assert deep.mode == "I;16"
    return encode(deep, "PNG"), [view]


def int32_grey() -> tuple[bytes, list[Image.Image]]:
    view = viewer_picture(levels=(0, 120, 255))
    deep = Image.fromarray(grey(view).astype(np.int32) * 257, "I")
    return encode(deep, "TIFF"), [view]


def float_grey() -> tuple[bytes, list[Image.Image]]:
    view = viewer_picture(levels=(0, 120, 255))
    deep = Image.fromarray(grey(view).astype(np.float32) / 255.0, "F")
    return encode(deep, "TIFF"), [view]


def cmyk() -> tuple[bytes, list[Image.Image]]:
    view = viewer_picture(levels=(0, 120, 255))
    black = Image.fromarray(255 - grey(view))
    blank = Image.new("L", (W, H), 0)
    return encode(Image.merge("CMYK", (blank, blank, blank, black)), "TIFF"), [view]


def one_bit() -> tuple[bytes, list[Image.Image]]:
    view = viewer_picture()
    return encode(view.convert("1"), "PNG"), [view]


# The transpose that undoes each EXIF orientation (what a viewer applies), and its inverse (how we store).
UNDO = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
INVERSE = {Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270}


def exif_rotated(orientation: int, fmt: str = "PNG") -> Callable[[], tuple[bytes, list[Image.Image]]]:
    def build() -> tuple[bytes, list[Image.Image]]:
        view = viewer_picture()
        undo = UNDO[orientation]
        stored = view.transpose(INVERSE.get(undo, undo))
        exif = Image.Exif()
        exif[0x0112] = orientation
        return encode(stored, fmt, exif=exif, **({"lossless": True} if fmt == "WEBP" else {})), [view]

    return build


def animated(fmt: str) -> Callable[[], tuple[bytes, list[Image.Image]]]:
    """Three frames, each a different picture: every one must reach the model, in order."""

    def build() -> tuple[bytes, list[Image.Image]]:
        views = [viewer_picture(seed) for seed in range(3)]
        frames = [v.convert("L") if fmt in ("GIF", "TIFF") else v for v in views]
        options = {"lossless": True} if fmt == "WEBP" else {}
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options)
        assert Image.open(io.BytesIO(data)).n_frames == 3
        return data, views

    return build


CORPUS: dict[str, tuple[Callable[[], tuple[bytes, list[Image.Image]]], bool]] = {
    # name: (builder, whether the old convert("RGB")-of-the-first-frame showed the model something else)
    "RGBA alpha-only drawing": (rgba_drawn_in_alpha, True),
    "LA alpha-only drawing": (la_drawn_in_alpha, True),
    # Pillow's P -> RGB keeps the transparent colour in .info, which transformers then composites: right before too.
    "P with transparency (PNG)": (palette_with_transparency("PNG"), False),
    "P with transparency (GIF)": (palette_with_transparency("GIF"), False),
    "I;16 greyscale PNG": (sixteen_bit_grey, True),
    "I 32-bit greyscale TIFF": (int32_grey, True),
    "F float greyscale TIFF": (float_grey, True),
    "CMYK TIFF": (cmyk, False),
    "1-bit PNG": (one_bit, False),
    **{f"EXIF orientation {o}": (exif_rotated(o), True) for o in UNDO},
    "EXIF orientation 6 (WebP)": (exif_rotated(6, "WEBP"), True),
    "animated GIF": (animated("GIF"), True),
    "APNG": (animated("PNG"), True),
    "animated WebP": (animated("WEBP"), True),
    "multi-page TIFF": (animated("TIFF"), True),
}


def official_pixels(processor, pictures: list[Image.Image]) -> torch.Tensor:
    return processor.image_processor(images=pictures, return_tensors="pt")["pixel_values"]


def guard_prompt(guard: LlamaGuard, ref) -> object:
    content = [{"type": "image_url", "image_url": {"url": ref}}, {"type": "text", "text": "what is this?"}]
    return guard.build_prompts([{"role": "user", "content": content}])[0]


@pytest.mark.parametrize("name", list(CORPUS))
def test_the_model_sees_the_viewers_picture(guard, processor, name):
    build, old_was_wrong = CORPUS[name]
    data, pictures = build()
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    prompt = guard_prompt(guard, url)

    expected = official_pixels(processor, pictures)
    # Every frame's viewer picture, in order; where decoders disagree (transparency, 16-bit) the guard also sees
    # their pictures (tests/security/test_image_renders.py), so the viewer's are a subsequence of its pictures.
    shown = iter(prompt.images)
    assert all(any(np.array_equal(np.asarray(p), np.asarray(s)) for s in shown) for p in pictures)
    assert len(prompt.image_spans) == len(prompt.images)  # one image per picture, each with its own tokens
    assert torch.equal(prompt.pixel_values, official_pixels(processor, list(prompt.images)))

    # The case matters: the old conversion (first frame, convert("RGB"), no orientation) differed.
    first = Image.open(io.BytesIO(data))
    old = official_pixels(processor, [first.convert("RGB")])
    assert (not torch.equal(old, expected)) is old_was_wrong


def test_a_jpeg_with_exif_orientation_is_turned_upright(guard, processor):
    data, (view,) = exif_rotated(6, "JPEG")()
    (image,) = load_images(data, "test")
    assert image.size == view.size == (W, H)  # stored 60x90, shown 90x60
    # JPEG is lossy: the dark rectangle must be where the viewer sees it.
    assert grey(image)[10:18, 10:25].mean() < 40 and grey(image)[10:18, 60:85].mean() > 215


def test_a_pil_image_from_the_application_gets_the_same_treatment_and_keeps_its_frame(processor):
    data, views = animated("GIF")()
    animation = Image.open(io.BytesIO(data))
    animation.seek(1)
    got = load_images(animation, "test")
    assert [np.array_equal(grey(a), grey(b)) for a, b in zip(got, views)] == [True, True, True]
    assert animation.tell() == 1
    rgba, (view,) = rgba_drawn_in_alpha()
    assert np.array_equal(np.asarray(load_images(Image.open(io.BytesIO(rgba)), "t")[0]), np.asarray(view))


# -- formats ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALLOWED_FORMATS)
def test_every_allowed_format_is_read(fmt):
    picture = make_image(40, 30)
    (image,) = load_images(encode(picture, fmt), "test")
    assert image.mode == "RGB" and image.size == (40, 30)


@pytest.mark.parametrize("fmt", ["PPM", "TGA", "ICO", "PCX", "SGI", "DDS", "QOI"])
def test_formats_outside_the_allow_list_are_refused(fmt):
    data = encode(make_image(32, 32).convert("RGBA" if fmt == "DDS" else "RGB"), fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself would read it
    with pytest.raises(InvalidImageError, match="not PNG, JPEG, WebP, GIF, BMP or TIFF"):
        load_images(data, "test")


# -- limits -----------------------------------------------------------------------------------------------


def test_frames_count_against_the_per_conversation_image_limit(monkeypatch):
    monkeypatch.setattr(images_module, "MAX_IMAGES", 4)
    gif, _ = animated("GIF")()  # 3 frames
    still = png_bytes(make_image(20, 20))

    def user(*refs) -> dict:
        return {"role": "user", "content": [*({"type": "image", "image": r} for r in refs), "look"]}

    assert len(parse_conversation([user(gif, still)]).images) == 4
    with pytest.raises(TooManyImagesError, match="limit of 4 images per conversation"):
        parse_conversation([user(gif), {"role": "assistant", "content": "ok"}, user(gif)])
    with pytest.raises(TooManyImagesError):
        parse_conversation([user(still, still, still, still, still)])


def test_the_frame_limit_is_checked_before_any_frame_is_decoded(monkeypatch):
    gif, _ = animated("GIF")()
    decoded: list[object] = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or real_load(self))
    monkeypatch.setattr(images_module, "MAX_IMAGES", 2)
    with pytest.raises(TooManyImagesError):
        load_images(gif, "test")
    assert decoded == []


def test_the_decompression_bomb_limit_bounds_all_frames_together(monkeypatch):
    gif, _ = animated("GIF")()  # 3 frames of 90x60 = 16,200 pixels
    monkeypatch.setattr(images_module, "MAX_PIXELS", 3 * W * H)
    assert len(load_images(gif, "test")) == 3
    monkeypatch.setattr(images_module, "MAX_PIXELS", 3 * W * H - 1)
    decoded: list[object] = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or real_load(self))
    with pytest.raises(InvalidImageError, match=f"with 3 frames, larger than {3 * W * H - 1} pixels"):
        load_images(gif, "test")
    assert decoded == []  # refused from the header: no frame was decoded


def test_a_path_object_is_read_and_a_missing_one_named(tmp_path: Path):
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(make_image(30, 20)))
    assert load_images(path, "test")[0].size == (30, 20)
    with pytest.raises(InvalidImageError, match="does not exist"):
        load_images(tmp_path / "missing.png", "test")


def test_line_wrapped_base64_and_data_urls_are_read():
    text = base64.encodebytes(png_bytes(make_image(30, 20))).decode()  # MIME style: a newline every 76 characters
    assert "\n" in text.strip()
    assert load_images(text, "test")[0].size == (30, 20)
    assert load_images("data:image/png;base64," + text, "test")[0].size == (30, 20)
