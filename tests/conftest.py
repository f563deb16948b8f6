"""Shared fixtures: the random-weight Llama Guard 4 test model (real architecture, real tokenizer)."""

from __future__ import annotations

import functools
import io
import logging
import os
from pathlib import Path

import pytest
from PIL import Image

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
logging.getLogger("transformers").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def test_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llamaguard_guardrails.testing import make_test_model

    return make_test_model(tmp_path_factory.mktemp("llama-guard-4-test-model"))


@pytest.fixture(scope="session")
def guard(test_model_dir: Path):
    from llamaguard_guardrails import LlamaGuard

    g = LlamaGuard.from_pretrained(test_model_dir)
    yield g
    g.close()


@pytest.fixture(scope="session")
def uncached_guard(guard):
    """The same loaded model without the verdict cache, for comparisons that must recompute."""
    from llamaguard_guardrails import LlamaGuard

    return LlamaGuard(guard.backend, guard.prompts, cache_size=0)


@pytest.fixture(scope="session")
def processor(test_model_dir: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(test_model_dir))


@pytest.fixture(scope="module")
def processors_read_once():
    """For tests of a command line, not of loading: each model folder's tokenizer and image processor (the real
    ones) are read once per module instead of once per command (the 202k-token tokenizer is most of a command's
    time). Use with ``pytestmark = pytest.mark.usefixtures("processors_read_once")``."""
    from llamaguard_guardrails.backends import transformers as backend

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backend, "load_processor", functools.lru_cache(maxsize=4)(backend.load_processor))
        yield


def make_image(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> Image.Image:
    image = Image.new("RGB", (width, height), color)
    for x in range(0, width, 7):  # some structure, so images differ in more than colour
        image.putpixel((x, (x * 3) % height), (x % 256, 255 - x % 256, 90))
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
