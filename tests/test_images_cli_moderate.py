"""Unreadable or refused images in the batch and command-line paths: an ``invalid`` row, exit code 2.

``moderate`` rows come from files that may hold anything a client sent: an image path (existing or
not), a ``file://`` URL, EPS bytes or a truncated PNG is an ``invalid`` row (``safe`` null, never
true, also under ``fail_mode="open"``), with the same message for an existing and a missing path.
The CLI opens the files its user names with ``--image`` and exits 2 with one line on stderr when one
is not a readable image; strings inside ``--conversation`` files are never opened.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from llamaguard_guardrails import Policy
from llamaguard_guardrails.scale import moderate, read_rows
from llamaguard_guardrails.testing import keyword_rule
from test_cli import run
from test_moderate import scripted_factory

from conftest import make_image, png_bytes

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n"
PNG = png_bytes(make_image(40, 30))


pytestmark = pytest.mark.usefixtures("processors_read_once")


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def with_image(ref: str, text: str = "what is in this picture?") -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": ref}}, {"type": "text", "text": text}]}
    ]


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(PNG)
    return path


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_moderate_writes_an_invalid_row_for_every_refused_or_unreadable_image(
    tmp_path: Path, image_file: Path, uncached_guard, fail_mode
):
    rows_in = [
        with_image(data_url(PNG)),  # fine
        with_image(str(image_file)),  # an existing image on this machine
        with_image(str(tmp_path / "missing.png")),
        with_image(image_file.as_uri()),
        with_image((tmp_path / "missing.png").as_uri()),
        with_image(data_url(EPS)),
        with_image(data_url(PNG[:-40])),  # truncated
        with_image(data_url(PNG[:11] + b"\x00" + PNG[12:])),  # corrupt IHDR: was a plain ValueError
        with_image(data_url(PNG), "how do I build a bomb?"),
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows_in) + "\n")
    out = tmp_path / "out.jsonl"
    factory = scripted_factory(uncached_guard, keyword_rule("bomb"))
    summary = moderate(source, out, guard_factory=factory, policy=Policy(fail_mode=fail_mode), progress=False)

    rows = read_rows(out)
    assert [r["status"] for r in rows] == ["safe"] + ["invalid"] * 7 + ["unsafe"]
    assert (summary.safe, summary.unsafe, summary.invalid, summary.errors) == (1, 1, 7, 0)
    invalid = rows[1:8]
    assert all(r["safe"] is None and r["unsafe_probability"] is None for r in invalid)
    paths = {r["error"] for r in invalid[:4]}
    assert len(paths) == 1 and "never opened as local files" in paths.pop()  # existing or not: one message
    assert "not PNG, JPEG, WebP, GIF, BMP or TIFF" in invalid[4]["error"]
    assert all("not a readable image" in r["error"] or "could not be decoded" in r["error"] for r in invalid[5:])


@pytest.mark.parametrize(
    "content, fragment",
    [(EPS, "not PNG, JPEG, WebP, GIF, BMP or TIFF"), (PNG[:-40], "could not be decoded"), (b"", "not a readable")],
    ids=["eps", "truncated", "empty"],
)
def test_check_exits_2_on_an_unreadable_image_file(capsys, tmp_path: Path, test_model_dir, content, fragment):
    image = tmp_path / "photo.png"
    image.write_bytes(content)
    code, out, err = run(capsys, "check", "--model", str(test_model_dir), "--text", "hi", "--image", str(image))
    assert code == 2 and out == "" and fragment in err and "Traceback" not in err


def test_image_paths_inside_a_conversation_file_are_not_opened(
    capsys, tmp_path: Path, image_file: Path, test_model_dir
):
    conversation = tmp_path / "chat.json"
    conversation.write_text(json.dumps(with_image(str(image_file))))
    code, _, err = run(capsys, "prompt", "--model", str(test_model_dir), "--conversation", str(conversation))
    assert code == 2 and "never opened as local files" in err and "Traceback" not in err
    # the same picture named with --image is opened: the CLI's user named it
    conversation.write_text(json.dumps([{"role": "user", "content": "what is in this picture?"}]))
    argv = ["prompt", "--model", str(test_model_dir), "--conversation", str(conversation), "--image", str(image_file)]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and out.count("<|image|>") == 1
