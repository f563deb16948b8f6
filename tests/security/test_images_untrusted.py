"""Images from untrusted clients: no file reads, no external programs, typed errors only.

- Strings never name files: a path or ``file://`` URL in any image field, through ``classify``, the
  LangChain adapter or ``parse_conversation``, is an ``InvalidImageError`` whose message is the same
  for an existing image, an existing non-image and a missing path, and the file system is not touched.
  A ``pathlib.Path`` from the application is opened; ``allow_local_image_paths=True`` opens strings.
- PostScript/EPS sent as ``data:image/png;base64,...`` is refused without Ghostscript ever running.
- Every corrupted or truncated image (1,988 mutations of valid files in the six allowed formats) is
  an ``InvalidImageError``, and under ``fail_mode="open"`` it still raises: it never passes.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import io
import os
import pathlib
import subprocess
from collections.abc import Iterator

import pytest
from PIL import EpsImagePlugin, Image

from llamaguard_guardrails import InvalidImageError, LlamaGuard, Policy, parse_conversation
from llamaguard_guardrails.core.images import ALLOWED_FORMATS, load_images

from conftest import make_image, png_bytes

EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 16 16
%%EndComments
newpath 0 0 moveto 16 16 lineto stroke
showpage
%%EOF
"""


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def image_message(part: dict) -> list[dict]:
    return [{"role": "user", "content": [part, {"type": "text", "text": "what is this?"}]}]


def image_parts(ref: str) -> list[dict]:
    """Every field a client can put an image string in."""
    return [
        {"type": "image_url", "image_url": {"url": ref}},
        {"type": "image_url", "image_url": ref},
        {"type": "input_image", "image_url": ref},
        {"type": "image", "image": ref},
        {"type": "image", "url": ref},
        {"type": "image", "path": ref},
        {"type": "image", "data": ref},
    ]


@pytest.fixture
def files(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    image = tmp_path / "secret.png"
    image.write_bytes(png_bytes(make_image(30, 20)))
    text = tmp_path / "passwords.txt"
    text.write_text("root:hunter2\n")
    return {"image": image, "text": text, "missing": tmp_path / "missing.png", "missing_dir": tmp_path / "nope" / "x"}


@pytest.fixture
def no_file_access(monkeypatch) -> Iterator[list[str]]:
    """Record (and fail) any attempt to look at or open a file while parsing."""
    touched: list[str] = []

    def trap(name):
        def refuse(*args, **kwargs):
            touched.append(f"{name}{args[:1]}")
            raise AssertionError(f"the guard touched the file system: {name}{args[:1]}")

        return refuse

    for owner, name in [
        (pathlib.Path, "read_bytes"),
        (pathlib.Path, "open"),
        (pathlib.Path, "exists"),
        (pathlib.Path, "is_file"),
        (pathlib.Path, "stat"),
        (os.path, "exists"),
        (os.path, "isfile"),
        (os, "stat"),
        (builtins, "open"),
        (io, "open"),
    ]:
        monkeypatch.setattr(owner, name, trap(f"{getattr(owner, '__name__', owner)}.{name}"))
    yield touched


def refusal(messages) -> str:
    with pytest.raises(InvalidImageError) as caught:
        parse_conversation(messages)
    return str(caught.value)


# -- where a reference may point ----------------------------------------------------------------------


def test_path_strings_and_file_urls_are_refused_with_one_message_and_no_file_access(files, no_file_access):
    seen = set()
    for kind in ("paths", "file URLs"):
        refs = {name: str(path) if kind == "paths" else path.as_uri() for name, path in files.items()}
        for n, part in enumerate(image_parts("REF")):
            errors = {name: refusal(image_message(_with(part, ref))) for name, ref in refs.items()}
            assert len(set(errors.values())) == 1, (kind, n, errors)  # existing or not: indistinguishable
            (message,) = set(errors.values())
            assert "never opened as local files" in message and "does not exist" not in message
            seen.add(message.split(": ", 1)[1])
    assert len(seen) == 1  # paths and file:// URLs, in every field: one message
    assert no_file_access == []


def _with(part: dict, ref: str) -> dict:
    """``part`` with its "REF" placeholder (at any depth) replaced by ``ref``."""
    return {k: (_with(v, ref) if isinstance(v, dict) else ref if v == "REF" else v) for k, v in part.items()}


@pytest.mark.parametrize("ref", ["photo.png", "./photo.png", "~/photo.jpg", "../x/y.gif", "/etc/passwd", "C:\\a.png"])
def test_path_like_strings_are_never_opened(ref, no_file_access):
    assert "never opened as local files" in refusal(image_message({"type": "image", "image": ref}))
    assert no_file_access == []


def test_the_guard_and_the_langchain_adapter_refuse_paths_the_same_way(make_guard, files):
    pytest.importorskip("langchain_core")
    from langchain_core.messages import HumanMessage

    from llamaguard_guardrails.langchain import LlamaGuardRunnable

    guard = make_guard()
    runnable = LlamaGuardRunnable(guard)
    errors = set()
    for path in (files["image"], files["missing"]):
        for ref in (str(path), path.as_uri()):
            with pytest.raises(InvalidImageError) as direct:
                guard.classify(image_message({"type": "image_url", "image_url": {"url": ref}}))
            block = {"type": "image", "url": ref}
            with pytest.raises(InvalidImageError) as adapted:
                runnable.invoke([HumanMessage(content=[block, {"type": "text", "text": "hi"}])])
            errors |= {str(direct.value).split(": ", 1)[1], str(adapted.value).split(": ", 1)[1]}
    assert len(errors) == 1 and "never opened as local files" in errors.pop()


def test_a_path_object_from_the_application_is_opened(make_guard, files):
    guard = make_guard()
    prompt = guard.build_prompts(image_message({"type": "image", "image": files["image"]}))[0]
    assert prompt.has_images and len(prompt.image_spans) == 1


def test_the_switch_opens_path_strings_for_trusted_deployments(make_guard, files):
    trusting = make_guard(allow_local_image_paths=True)
    for ref in (str(files["image"]), files["image"].as_uri()):
        prompt = trusting.build_prompts(image_message({"type": "image_url", "image_url": {"url": ref}}))[0]
        assert len(prompt.image_spans) == 1
    with pytest.raises(InvalidImageError, match="does not exist"):  # trusted input: the path is named
        trusting.classify(image_message({"type": "image", "path": str(files["missing"])}))
    with pytest.raises(InvalidImageError, match="remote image URLs are not fetched"):
        trusting.classify(image_message({"type": "image", "url": "https://example.com/a.png"}))
    assert make_guard().allow_local_image_paths is False  # the default
    assert LlamaGuard(trusting.backend, trusting.prompts).allow_local_image_paths is False


# -- which decoders run -------------------------------------------------------------------------------


@pytest.fixture
def no_ghostscript(monkeypatch) -> list[str]:
    """Fail the test if Pillow tries to run Ghostscript or any other program."""
    started: list[str] = []

    def forbid(name):
        def run(*args, **kwargs):
            started.append(name)
            raise AssertionError(f"{name} was called on untrusted image bytes")

        return run

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", forbid("EpsImagePlugin.Ghostscript"))
    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, forbid(f"subprocess.{name}"))
    monkeypatch.setattr(os, "system", forbid("os.system"))
    return started


def test_without_an_allow_list_pillow_would_hand_these_bytes_to_ghostscript(no_ghostscript):
    """The control: the EPS bytes are recognised as EPS and loading them runs Ghostscript."""
    image = Image.open(io.BytesIO(EPS))
    assert image.format == "EPS"
    with pytest.raises(AssertionError, match="Ghostscript was called"):
        image.load()
    assert no_ghostscript == ["EpsImagePlugin.Ghostscript"]


def test_eps_disguised_as_png_is_refused_without_running_ghostscript(make_guard, no_ghostscript):
    guard = make_guard(policy=Policy(fail_mode="open"))
    b64 = base64.b64encode(EPS).decode()
    raw = [{"type": "image", "image": EPS}, {"type": "image", "base64": b64, "mime_type": "image/png"}]
    for part in [*image_parts(data_url(EPS)), *image_parts(b64), *raw]:
        with pytest.raises(InvalidImageError, match="not PNG, JPEG, WebP, GIF, BMP or TIFF"):
            guard.classify(image_message(part))
    assert no_ghostscript == []


# -- every decoding failure is typed --------------------------------------------------------------------


def mutations(data: bytes) -> Iterator[bytes]:
    """Header bytes overwritten (0x00, 0x7F, 0xFF at each of the first 96 offsets) and ~40 truncations."""
    for offset in range(min(96, len(data))):
        for value in (0x00, 0x7F, 0xFF):
            broken = bytearray(data)
            broken[offset] = value
            yield bytes(broken)
    for length in range(1, len(data), max(1, len(data) // 40)):
        yield data[:length]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's own notes on corrupt TIFF/EXIF tags
@pytest.mark.parametrize("fmt", ALLOWED_FORMATS)
def test_every_corrupt_or_truncated_image_is_a_typed_error(fmt, no_ghostscript):
    buffer = io.BytesIO()
    make_image(40, 30).save(buffer, format=fmt)
    outcomes = {"read": 0, "refused": 0}
    for broken in mutations(buffer.getvalue()):
        try:
            frames = load_images(broken, "test")
        except InvalidImageError as exc:
            assert str(exc).startswith("test: ")
            outcomes["refused"] += 1
        else:  # a mutation Pillow still reads is fine: what comes back is a checkable picture
            assert frames and all(f.mode == "RGB" for f in frames)
            outcomes["read"] += 1
    assert outcomes["refused"] > 0
    assert no_ghostscript == []


@pytest.mark.parametrize(
    "data",
    [
        png_bytes(make_image(40, 30))[:-40],  # truncated pixel data
        png_bytes(make_image(40, 30))[:20],  # truncated header (IHDR)
        png_bytes(make_image(40, 30))[:11] + b"\x00" + png_bytes(make_image(40, 30))[12:],  # was a ValueError
        EPS,
        b"GIF89a" + b"\x00" * 30,
    ],
    ids=["truncated-data", "truncated-ihdr", "corrupt-ihdr", "eps", "gif-garbage"],
)
def test_fail_open_never_passes_an_unreadable_image(make_guard, data, no_ghostscript):
    guard = make_guard(policy=Policy(fail_mode="open"))
    messages = image_message({"type": "image_url", "image_url": {"url": data_url(data)}})
    with pytest.raises(InvalidImageError):
        guard.classify(messages)
    with pytest.raises(InvalidImageError):
        asyncio.run(guard.aclassify(messages))
    with pytest.raises(InvalidImageError, match="conversation 1"):
        guard.classify_batch(["fine", messages])
    with pytest.raises(InvalidImageError):
        guard.classify(messages, policy=Policy(fail_mode="open", timeout_s=30))
