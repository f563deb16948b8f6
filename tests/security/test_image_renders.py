"""Where decoders disagree about an image's pixels, the guard sees every picture a model may get.

A transparent or 16-bit image has no single picture: a light viewer and Hugging Face's ``convert_to_rgb``
composite transparency on white, a dark-mode viewer on black, Pillow's ``convert("RGB")`` (LLaVA-style pipelines,
stb_image in llama.cpp) drops it and shows the colours under transparent pixels, and Pillow (so every pipeline on
it, ``convert_to_rgb`` included) clips 16-bit greyscale where a viewer scales it. The guard showed only the
light viewer's picture, so text hidden under fully transparent pixels, drawn in the alpha channel of a white image,
behind a PNG's transparent colour or written in the low values of a 16-bit PNG reached a model while the guard saw a
blank image, and a word stored the right way round under a mirroring or upside-down EXIF orientation reached the
guard mirrored (a pipeline handed the decoded image ignores the tag). Generated here:
each way to hide a picture, in each container that can carry it, read by each decoder: every decoder's picture of
every frame is one of the guard's pictures, and the hidden picture differs from the light viewer's (so each case
matters). Opaque 8-bit images still cost one picture a frame, and extra pictures count against the budgets.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw
from transformers.image_transforms import convert_to_rgb

from llamaguard_guardrails import InvalidImageError, Policy, TooManyImagesError, parse_conversation
from llamaguard_guardrails.core.images import ImageLimits, image_reader, load_images, read_image_part, viewer_rgb

W, H = 48, 24


def secret() -> np.ndarray:
    """The hidden picture: a word in white on black, as an 8-bit greyscale array."""
    picture = Image.new("L", (W, H), 0)
    ImageDraw.Draw(picture).text((2, 6), "BOMB", fill=255)
    return np.asarray(picture)


def under_transparent_pixels(mode: str) -> Image.Image:
    """The picture in the colours, every pixel fully transparent: a viewer shows a blank image."""
    grey = Image.fromarray(secret())
    image = Image.merge("RGBA", (grey, grey, grey, Image.new("L", (W, H), 0)))
    return image.convert(mode)


def drawn_in_alpha(mode: str) -> Image.Image:
    """White everywhere, the picture in the alpha channel: blank on white, the word on black."""
    white = Image.new("L", (W, H), 255)
    image = Image.merge("RGBA", (white, white, white, Image.fromarray(secret())))
    return image.convert(mode)


def almost_transparent(mode: str) -> Image.Image:
    """The picture in the colours at alpha 1/255: near white on a light viewer, plain under ``convert("RGB")``."""
    grey = Image.fromarray(secret())
    return Image.merge("RGBA", (grey, grey, grey, Image.new("L", (W, H), 1))).convert(mode)


def palette_all_transparent(_: str) -> Image.Image:
    """A palette PNG whose two colours are both fully transparent (tRNS per index)."""
    image = Image.fromarray((secret() > 0).astype(np.uint8), "L").convert("P")
    image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    image.info["transparency"] = bytes([0, 0])
    return image


def transparent_colour(mode: str) -> Image.Image:
    """White text on a black that is the image's transparent colour (PNG tRNS for RGB or L): blank on white."""
    image = Image.fromarray(((secret() > 127) * 255).astype(np.uint8)).convert(mode)  # two colours only
    image.info["transparency"] = (0, 0, 0) if mode == "RGB" else 0
    return image


def sixteen_bit_low(_: str) -> Image.Image:
    """16-bit greyscale with the picture in values 0..255: black to a viewer (1/257), plain to Pillow (clipped)."""
    return Image.fromarray(secret().astype(np.uint16))


def oriented(orientation: int) -> Callable[[str], Image.Image]:
    """The word stored the right way round under an EXIF orientation: a viewer turns it (mirrored, upside down or
    sideways), a pipeline handed the decoded image reads it as stored."""

    def build(mode: str) -> Image.Image:
        image = Image.fromarray(np.stack([secret()] * 3, axis=-1)).convert(mode)
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.info["exif"] = exif.tobytes()
        return image

    return build


def encode(image: Image.Image, fmt: str, frames: int) -> bytes:
    """``image`` saved as ``fmt``; with 2 frames, after a plain frame (the hidden picture in the second)."""
    buffer = io.BytesIO()
    options = {"lossless": True} if fmt == "WEBP" else {}
    for key in ("exif", "transparency"):
        if key in image.info:
            options[key] = image.info[key]
    if frames == 1:
        image.save(buffer, format=fmt, **options)
    else:
        plain = Image.new(image.mode, image.size)
        if image.mode == "P":
            plain.putpalette(image.getpalette())
        plain.save(buffer, format=fmt, save_all=True, append_images=[image], duration=100, **options)
    return buffer.getvalue()


HIDE: dict[str, tuple[Callable[[str], Image.Image], tuple[tuple[str, str], ...]]] = {
    # name: (builder, the (format, mode)s that carry it)
    "under transparent pixels": (
        under_transparent_pixels,
        (("PNG", "RGBA"), ("PNG", "LA"), ("WEBP", "RGBA"), ("TIFF", "RGBA"), ("TIFF", "LA")),
    ),
    "drawn in alpha": (drawn_in_alpha, (("PNG", "RGBA"), ("PNG", "LA"), ("WEBP", "RGBA"), ("TIFF", "RGBA"))),
    "almost transparent": (almost_transparent, (("PNG", "RGBA"), ("PNG", "LA"), ("TIFF", "RGBA"))),
    "palette, every colour transparent": (palette_all_transparent, (("PNG", "P"),)),
    "transparent colour": (transparent_colour, (("PNG", "RGB"), ("PNG", "L"))),
    "16-bit low values": (sixteen_bit_low, (("PNG", "I;16"), ("TIFF", "I;16"))),
    **{
        # (Pillow turns a TIFF upright as it decodes it, so every Pillow pipeline agrees there.)
        f"EXIF orientation {o}": (oriented(o), (("PNG", "RGB"), ("JPEG", "RGB"), ("WEBP", "RGB")))
        for o in (2, 3, 4, 5, 7)  # mirrored or upside down; a quarter turn is only applied (see the next test)
    },
}
BLANK_TO_A_LIGHT_VIEWER = ("under", "drawn", "almost", "palette", "transparent colour")

CASES = [
    (hide, fmt, mode, frames)
    for hide, (_, carriers) in HIDE.items()
    for fmt, mode in carriers
    for frames in ((1, 2) if mode in ("RGBA", "LA") else (1,))  # APNG keeps no per-index alpha
]


def each_frame(data: bytes, decode: Callable[[Image.Image], Image.Image]) -> list[Image.Image]:
    """``decode`` applied to every frame of ``data``, as opened (a copy would drop a TIFF's orientation tag)."""
    image = Image.open(io.BytesIO(data))
    out = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        out.append(decode(image))
    return out


DECODERS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "Pillow convert('RGB')": lambda frame: frame.convert("RGB"),
    "transformers convert_to_rgb": lambda frame: Image.fromarray(convert_to_rgb(frame, return_numpy=True)),
    "dark-mode viewer": lambda frame: Image.alpha_composite(
        Image.new("RGBA", frame.size, (0, 0, 0, 255)), frame.convert("RGBA")
    ).convert("RGB"),
}


def same(one: Image.Image, other: Image.Image) -> bool:
    return one.size == other.size and np.array_equal(np.asarray(one), np.asarray(other))


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")  # Pillow's, for the test's own decoder
@pytest.mark.parametrize(("hide", "fmt", "mode", "frames"), CASES)
def test_every_decoders_picture_reaches_the_guard(builder, hide, fmt, mode, frames):
    data = encode(HIDE[hide][0](mode), fmt, frames)
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(data)}}, "what?"]}
    conversation = parse_conversation([message])
    shown = conversation.images
    (prompt,) = builder.build(conversation, Policy())
    assert len(prompt.image_spans) == len(shown)  # every picture has its own image tokens in the prompt
    light_viewer = each_frame(data, viewer_rgb)
    revealed = False
    for name, decode in DECODERS.items():
        for index, picture in enumerate(each_frame(data, decode)):
            assert any(same(picture, one) for one in shown), f"{name}, frame {index}: the guard never saw it"
            revealed |= not same(picture, light_viewer[index])
    assert revealed  # some decoder shows what the light viewer does not: the case matters
    if hide.startswith(BLANK_TO_A_LIGHT_VIEWER):
        assert np.asarray(light_viewer[-1]).std() < 1.0


def test_the_model_input_of_a_hidden_picture_is_not_a_blank_images(guard):
    """Through the guard: the hidden word's image holds a picture a blank image does not (its tiles were a blank white
    image's, so it also shared a blank image's verdict-cache and KV entries)."""
    blank = Image.new("RGBA", (W, H), (255, 255, 255, 0))

    def digests(image: Image.Image) -> set[bytes]:
        url = data_url(encode(image, "PNG", 1))
        (prompt,) = guard.build_prompts(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
        )
        return set(prompt.image_digests)

    assert digests(under_transparent_pixels("RGBA")) - digests(blank)


OPAQUE = {
    "RGB": lambda: Image.fromarray(np.stack([secret()] * 3, axis=-1)),
    "opaque RGBA": lambda: Image.fromarray(np.stack([secret()] * 3 + [np.full((H, W), 255, np.uint8)], axis=-1)),
    "L": lambda: Image.fromarray(secret()),
    "P": lambda: Image.fromarray(secret()).convert("P"),
    # 16-bit grey levels between black and white differ: a viewer scales them, Pillow clips them to white.
    "16-bit black and white": lambda: Image.fromarray((secret() > 127).astype(np.uint16) * 65535),
}


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "GIF", "BMP", "JPEG"])
@pytest.mark.parametrize("kind", sorted(OPAQUE))
def test_an_image_every_decoder_reads_alike_is_one_picture(fmt, kind):
    image = OPAQUE[kind]()
    if image.mode == "I;16" and fmt not in ("PNG", "TIFF"):
        pytest.skip(f"{fmt} cannot hold 16-bit greyscale")
    if (image.mode == "RGBA" and fmt in ("GIF", "JPEG", "BMP")) or (image.mode == "P" and fmt == "JPEG"):
        image = image.convert("RGB")  # what the format can hold
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert len(load_images(buffer.getvalue(), "test")) == 1


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_sideways_photo_is_one_upright_picture(fmt, orientation):
    """What a camera writes for every portrait photo: turned upright, and not shown twice (the cost would halve how
    many photos fit in a prompt; sideways text is still text the guard reads)."""
    data = encode(oriented(orientation)("RGB"), fmt, 1)
    (picture,) = load_images(data, "test")
    assert picture.size == (H, W)


def test_extra_pictures_count_against_the_image_budgets():
    data = encode(under_transparent_pixels("RGBA"), "PNG", 1)
    assert len(load_images(data, "test")) == 3  # light viewer, dark viewer, the colours under the alpha
    with image_reader(limits=ImageLimits(max_images=2)), pytest.raises(TooManyImagesError):
        read_image_part(data, "test")
    with image_reader(limits=ImageLimits(max_total_pixels=2 * W * H)), pytest.raises(InvalidImageError):
        read_image_part(data, "test")
    with image_reader(limits=ImageLimits(max_images=3, max_total_pixels=3 * W * H)) as reader:
        assert len(read_image_part(data, "test")) == 3 and reader.count == 3 and reader.pixels == 3 * W * H
