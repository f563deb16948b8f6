"""What a conversation's images may cost is bounded in aggregate, before decoding.

Generated instances: many small images summing over the pixel budget, one huge image, animations with
many frames, multi-page TIFFs whose later pages are larger, header-only decompression bombs, and encoded
data over the byte budget - through ``classify``, ``aclassify`` and ``classify_batch``. Each is refused with a
typed error, and the pixels decoded before the refusal (every ``Image.load`` is counted) never exceed the
budget. With the default limits, the issue's example (three large PNGs in a few hundred kB of data URLs)
is refused with the process's resident memory growing far less than decoding them would take. Image
decoding also counts inside ``Policy.timeout_s``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time

import psutil
import pytest
from PIL import Image

from llamaguard_guardrails import (
    GuardTimeoutError,
    ImageLimits,
    InvalidImageError,
    LlamaGuard,
    Policy,
    TooManyImagesError,
)
from llamaguard_guardrails.core.images import MAX_TOTAL_PIXELS
from llamaguard_guardrails.testing import keyword_rule

from .helpers import HangingBackend

LIMITS = ImageLimits(max_images=32, max_pixels=300_000, max_total_pixels=600_000, max_bytes=400_000)


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def data_url(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


def solid(width: int, height: int, shade: int = 90) -> Image.Image:
    return Image.new("RGB", (width, height), (shade, 160, 200))


def animation(frames: int, width: int, height: int, fmt: str) -> bytes:
    images = [solid(width, height, 20 + 5 * n) for n in range(frames)]  # distinct frames (none merged)
    options = {"save_all": True, "append_images": images[1:]}
    return encoded(images[0], fmt, **options)


def noise(size: int) -> bytes:
    """A PNG of ``size`` x ``size`` random pixels: about 3 * size**2 bytes that do not compress."""
    import numpy as np

    rng = np.random.default_rng(size)
    return encoded(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB"))


#: name -> (image references of one user message, the error it must raise)
CASES = {
    "many small images over the total": ([encoded(solid(400, 400, n)) for n in range(6)], InvalidImageError),
    "one huge image": ([encoded(solid(2000, 2000))], InvalidImageError),
    "header-only bomb (small file, huge size)": ([encoded(Image.new("1", (6000, 6000)))], InvalidImageError),
    "animated GIF, many frames": ([animation(12, 200, 200, "GIF")], InvalidImageError),
    "APNG, many frames": ([animation(12, 200, 200, "PNG")], InvalidImageError),
    "animated WebP, many frames": ([animation(12, 200, 200, "WEBP")], InvalidImageError),
    "more frames than images allowed": ([animation(40, 10, 10, "GIF")], TooManyImagesError),
    "two animations over the total": ([animation(4, 250, 250, "GIF")] * 3, InvalidImageError),
    "encoded bytes over the total": ([noise(200)] * 4, InvalidImageError),
    "data URLs over the total bytes": ([data_url(noise(200))] * 4, InvalidImageError),
}


def tiff_pages(*sizes: tuple[int, int]) -> bytes:
    pages = [solid(*size) for size in sizes]
    return encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:])


CASES["TIFF whose later page is larger"] = ([tiff_pages((100, 100), (700, 700))], InvalidImageError)
CASES["TIFFs over the total"] = ([tiff_pages((300, 300), (300, 300))] * 4, InvalidImageError)


def conversation(refs: list) -> list[dict]:
    return [{"role": "user", "content": [p for r in refs for p in parts_of(r)] + [{"type": "text", "text": "look"}]}]


def parts_of(ref) -> list[dict]:
    if isinstance(ref, str):
        return [{"type": "image_url", "image_url": {"url": ref}}]
    return [{"type": "image", "image": ref}]


@pytest.fixture
def decoded(monkeypatch) -> dict[tuple[int, int], int]:
    """The pixel count of every image frame Pillow decodes from a file's data during the test (a frame that
    Pillow decodes again, as GIF does for its disposal, counts once)."""
    frames: dict[tuple[int, int], int] = {}
    real_load = Image.Image.load

    def load(self):
        if getattr(self, "tile", None):  # data still to decode (after open, or after seeking to a frame)
            frames[(id(self), self.tell())] = self.width * self.height
        return real_load(self)

    monkeypatch.setattr(Image.Image, "load", load)
    return frames


ENTRIES = {
    "classify": lambda guard, conv: guard.classify(conv),
    "aclassify": lambda guard, conv: asyncio.run(guard.aclassify(conv)),
    "classify_batch": lambda guard, conv: guard.classify_batch(["hello", conv]),
}


@pytest.mark.parametrize("entry", list(ENTRIES))
@pytest.mark.parametrize("case", list(CASES))
def test_images_over_a_budget_are_refused_before_it_is_decoded(make_guard, decoded, case, entry):
    refs, error = CASES[case]
    guard = make_guard(image_limits=LIMITS)
    with pytest.raises(error) as info:
        ENTRIES[entry](guard, conversation(refs))
    assert "limit" in str(info.value) or "larger than" in str(info.value)
    pixels = sum(decoded.values())
    assert pixels <= LIMITS.max_total_pixels, f"decoded {pixels} pixels before refusing"
    assert not guard.backend.calls  # nothing reached the model


def test_the_same_images_within_the_budget_are_checked(make_guard):
    guard = make_guard(image_limits=LIMITS)
    refs = [encoded(solid(300, 300, n)) for n in range(6)]  # 540,000 pixels in all
    assert guard.classify(conversation(refs)).safe
    assert not guard.classify(conversation(refs[:2]) + [{"role": "user", "content": "a bomb"}]).safe


def test_image_limits_are_validated():
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="whole number"):
            ImageLimits(max_pixels=bad)


def rss_growth_while(call) -> tuple[int, BaseException | None]:
    """Peak growth of this process's resident memory (sampled every 2 ms) while ``call`` runs."""
    process = psutil.Process()
    base = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    error = None
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        error = exc
    finally:
        done.set()
        sampler.join()
    return peak - base, error


@pytest.mark.parametrize("side", [8000, 5000])
def test_the_issues_example_is_refused_before_the_memory_is_spent(make_guard, side):
    """Three large PNGs (a few hundred kB of data URLs): with the default limits, refused with a typed error,
    and memory grows far less than decoding them takes (about 12 bytes per pixel: 3 x 64 MP took ~1.5 GB)."""
    url = data_url(encoded(solid(side, side)))
    guard = make_guard()
    growth, error = rss_growth_while(lambda: guard.classify(conversation([url] * 3)))
    assert isinstance(error, InvalidImageError), error
    all_three = 3 * side * side * 12
    assert growth < min(all_three / 2, MAX_TOTAL_PIXELS * 12), f"resident memory grew {growth / 1e6:.0f} MB"


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_image_decoding_counts_inside_the_deadline(builder, entry):
    """Decoding images runs inside ``Policy.timeout_s`` on every entry point (the model hangs, so only the
    deadline can end the call)."""
    guard = LlamaGuard(HangingBackend(builder, keyword_rule("bomb")), builder, cache_size=0)
    refs = [encoded(solid(1500, 1500, n)) for n in range(12)]  # 27 MP to decode and tile
    policy = Policy(timeout_s=0.25)
    calls = {
        "classify": lambda: [guard.classify(conversation(refs), policy=policy)],
        "aclassify": lambda: [asyncio.run(guard.aclassify(conversation(refs), policy=policy))],
        "classify_batch": lambda: guard.classify_batch([conversation(refs)], policy=policy),
    }
    try:
        started = time.perf_counter()
        verdicts = calls[entry]()
        elapsed = time.perf_counter() - started
    finally:
        guard.backend.release.set()
        guard._executor.shutdown(wait=True)
        guard.close()
    assert all(not v.safe and GuardTimeoutError.__name__ in v.error for v in verdicts), verdicts
    assert elapsed < 2.0, f"returned after {elapsed:.1f} s"  # a generous bound: the deadline is 0.25 s


def test_moderate_rows_are_read_with_the_guards_image_limits(make_guard):
    from llamaguard_guardrails.scale.local_engine import verdict_rows
    from llamaguard_guardrails.scale.records import Record

    guard = make_guard(image_limits=LIMITS)
    over = conversation([data_url(encoded(solid(400, 400, n))) for n in range(6)])  # 960,000 pixels
    within = conversation([data_url(encoded(solid(300, 300, n))) for n in range(2)])
    rows = verdict_rows(guard, [Record(1, messages=over), Record(2, messages=within)], Policy(), 2)
    assert [r["status"] for r in rows] == ["invalid", "safe"]
    assert "pixels of images per conversation" in rows[0]["error"]
