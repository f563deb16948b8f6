"""A real ``llama stack run`` server never reads its own files or runs Ghostscript for a client.

Against the shipped run config on 127.0.0.1 (the provider's default: ``allow_local_image_paths`` off),
``run_shield`` with a ``file://`` image or a path string gets a 400 whose message is the same for an
image that exists on the server, another existing file and a missing path; EPS bytes sent as a PNG
data URL get a 400 naming the accepted formats; and the server goes on serving the next request.
Moderations take text only (``input`` is strings), so no image reaches the guard there.

Each request opens its own connection, with no retries. llama-stack 0.7.3 answers a plain ``ValueError``
with a 400 through its catch-all handler, which may then drop the connection; the last test asks for the
400 on a connection that stays open, which needs the provider's typed HTTP errors (expected to fail
until the provider has them).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_stack")
pytest.importorskip("llama_stack_client")

from llama_stack_client import BadRequestError, LlamaStackClient

from llamaguard_guardrails.llama_stack import RUN_CONFIG
from test_llama_stack import PASS, StackServer, make_impl, stack_env

from conftest import make_image, png_bytes

pytestmark = [
    pytest.mark.llama_stack,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated:DeprecationWarning"),
]

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n"


def with_image(url: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path) -> Iterator[StackServer]:
    home = tmp_path_factory.mktemp("stack-images")
    server = StackServer(RUN_CONFIG, stack_env(home, test_model_dir), home / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: StackServer) -> Iterator[Callable[[], LlamaStackClient]]:
    """A fresh client (its own connection, no retries) per call."""
    clients: list[LlamaStackClient] = []

    def fresh() -> LlamaStackClient:
        clients.append(LlamaStackClient(base_url=server.url, max_retries=0))
        return clients[-1]

    fresh().shields.register(shield_id="img-pass", provider_shield_id="img-pass", params=PASS)
    yield fresh
    for c in clients:
        c.close()


@pytest.fixture(scope="module")
def server_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("server-files")
    image = root / "secret.png"
    image.write_bytes(png_bytes(make_image(30, 20)))
    other = root / "notes.txt"
    other.write_text("not an image")
    return {"image": image, "other": other, "missing": root / "missing.png"}


def refused(client: LlamaStackClient, url: str) -> str:
    with pytest.raises(BadRequestError) as caught:
        client.safety.run_shield(shield_id="img-pass", messages=with_image(url))
    assert caught.value.status_code == 400
    return caught.value.message


def serves(client: LlamaStackClient) -> bool:
    hi = [{"role": "user", "content": "hi"}]
    return client.safety.run_shield(shield_id="img-pass", messages=hi).violation is None


def test_file_urls_and_paths_get_one_400_whether_or_not_the_file_exists(client, server_files):
    for make in (lambda p: p.as_uri(), str):
        messages = {name: refused(client(), make(path)) for name, path in server_files.items()}
        assert len(set(messages.values())) == 1, messages
        assert "never opened as local files" in messages["image"]
        assert serves(client())


def test_eps_in_a_png_data_url_gets_a_400_and_the_server_keeps_serving(client, server):
    message = refused(client(), "data:image/png;base64," + base64.b64encode(EPS).decode())
    assert "not PNG, JPEG, WebP, GIF, BMP or TIFF" in message
    assert serves(client())
    assert server.proc.poll() is None
    assert "Ghostscript" not in server.log.read_text()


def test_a_good_data_url_image_is_still_checked(client):
    url = "data:image/png;base64," + base64.b64encode(png_bytes(make_image(24, 16))).decode()
    assert client().safety.run_shield(shield_id="img-pass", messages=with_image(url)).violation is None


def test_a_refused_image_keeps_the_connection_open(client, server_files):
    one = client()  # one connection for the three requests
    refused(one, server_files["image"].as_uri())
    refused(one, "data:image/png;base64," + base64.b64encode(EPS).decode())
    assert serves(one)


def test_the_provider_switch_opens_local_paths_only_when_set(test_model_dir, server_files):
    from llama_stack_api import RunShieldRequest

    request = RunShieldRequest(shield_id="lg", messages=with_image(server_files["image"].as_uri()))
    trusting = make_impl({"model": str(test_model_dir), "allow_local_image_paths": True}, threshold=1.0)
    guard = asyncio.run(trusting.load_guard())
    try:
        assert guard.allow_local_image_paths is True
        assert asyncio.run(trusting.run_shield(request)).violation is None  # opened and checked
    finally:
        guard.close()
    assert make_impl({"model": str(test_model_dir)}).config.allow_local_image_paths is False


def test_the_provider_sets_the_guards_image_limits(test_model_dir):
    """``image_limits`` in the provider config bounds what a client's images may cost: over it, a 400."""
    from fastapi import HTTPException
    from llama_stack_api import RunShieldRequest

    url = "data:image/png;base64," + base64.b64encode(png_bytes(make_image(60, 60))).decode()  # 3,600 pixels
    impl = make_impl({"model": str(test_model_dir), "image_limits": {"max_total_pixels": 2000}}, threshold=1.0)
    guard = asyncio.run(impl.load_guard())
    try:
        assert guard.image_limits.max_total_pixels == 2000
        request = RunShieldRequest(shield_id="lg", messages=with_image(url))
        with pytest.raises(HTTPException) as info:
            asyncio.run(impl.run_shield(request))
        assert info.value.status_code == 400 and "pixels of images per conversation" in str(info.value.detail)
    finally:
        guard.close()
