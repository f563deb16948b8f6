"""``check`` and ``prompt``: a text or a conversation file (plus images) checked, or shown as the model sees it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import messages as build
from ..core.conversation import Conversation, parse_conversation
from ..core.errors import GuardError, InvalidConversationError
from ..core.json_text import loads_unambiguous
from ..files import read_bounded
from ..scale.records import describe_error
from .common import EXIT_OK, EXIT_REVIEW, EXIT_UNSAFE, add_policy_arguments, check_device, policy_from_args

if TYPE_CHECKING:
    from ..guard import LlamaGuard


class _BadInput(GuardError, ValueError):
    """A bad file or option; the message says what to fix."""


def _conversation(args: argparse.Namespace) -> Conversation:
    """The conversation the options describe, parsed (any problem: ``_BadInput`` or a typed error)."""
    messages, source = _messages(args)
    for n, image in enumerate(getattr(args, "image", None) or []):
        _add_image(messages, image, n)
    try:
        return parse_conversation(messages)
    except InvalidConversationError as exc:
        raise type(exc)(f"{source}: {exc}") from exc
    except Exception as exc:
        raise _BadInput(f"{source} is not a valid conversation: {describe_error(exc)}") from exc


def _messages(args: argparse.Namespace) -> tuple[list[Any], str]:
    if getattr(args, "text", None) is not None:
        if not args.text.strip() and not getattr(args, "image", None):
            raise _BadInput("--text is empty: give the text to check")
        return [{"role": "user", "content": args.text}], "--text"
    path = Path(args.conversation)
    data = _read_file(path, "conversation file")
    try:
        messages = loads_unambiguous(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise _BadInput(f"{path} is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise _BadInput(f"{path} is not valid JSON: {exc}") from exc
    except Exception as exc:
        raise _BadInput(f"{path} cannot be read: {describe_error(exc)}") from exc
    if isinstance(messages, dict) and "messages" in messages:
        messages = messages["messages"]
    if not isinstance(messages, list):
        raise _BadInput(f"{path} must hold a JSON list of messages (or an object with a 'messages' list)")
    return messages, str(path)


def _read_file(path: Path, what: str) -> bytes:
    return read_bounded(path, what)  # a folder, a missing file, over MAX_FILE_BYTES: DatasetError (exit 2)


def _add_image(messages: list[Any], image: str, position: int) -> None:
    """Put the image file before the text of the last message (after the images added before it)."""
    path = Path(image)
    if path.is_dir():
        raise _BadInput(f"image {image} is a folder, not a file")
    if not path.is_file():
        raise _BadInput(f"image file {image} does not exist")
    if not messages:
        raise _BadInput("--image needs a message to go with: the conversation is empty")
    last = messages[-1]
    if not isinstance(last, dict):
        raise _BadInput(f"--image goes into the last message, which must be a JSON object, not {_kind(last)}")
    content = last.get("content")
    if isinstance(content, str):
        parts: list[Any] = [{"type": "text", "text": content}] if content else []
    elif content is None or isinstance(content, list):
        parts = list(content or [])
    else:
        raise _BadInput(f"--image: the last message's content must be text or a list of parts, not {_kind(content)}")
    parts.insert(position, build.image_part(path))  # a Path: opened (strings never are)
    last["content"] = parts


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def load_guard(args: argparse.Namespace) -> LlamaGuard:
    """``LlamaGuard.from_pretrained(--model, device=--device)``, the device checked first."""
    from ..guard import LlamaGuard

    device = getattr(args, "device", None)
    check_device(device)
    return LlamaGuard.from_pretrained(args.model, device=device)


def cmd_check(args: argparse.Namespace) -> int:
    conversation = _conversation(args)
    policy = policy_from_args(args)
    guard = load_guard(args)
    try:
        verdict = guard.classify(conversation, policy=policy)
    finally:
        guard.close()
    if args.json:  # the verdict's fields, and what it decided (as the served guard's answers carry it)
        print(json.dumps(verdict.model_dump(mode="json") | {"status": verdict.status, "outcome": verdict.outcome}))
    else:
        print(verdict.summary())
    return {"allow": EXIT_OK, "review": EXIT_REVIEW}.get(verdict.outcome, EXIT_UNSAFE)


def cmd_prompt(args: argparse.Namespace) -> int:
    from ..loading import load_prompt_builder

    conversation = _conversation(args)
    policy = policy_from_args(args)
    builder = load_prompt_builder(args.model)
    prompt = builder.build(conversation, policy)[0]
    if args.format == "ids":
        print(json.dumps(list(prompt.input_ids)))
    else:
        sys.stdout.write(builder.decode(prompt.input_ids) + "\n")
    return EXIT_OK


def add_parsers(subparsers: Any) -> None:
    """Add the ``check`` and ``prompt`` commands."""
    check = subparsers.add_parser(
        "check",
        help="classify a text or a conversation",
        description="Classify the last message. Exit 0 safe, 1 unsafe, 2 bad input, 3 needs a human "
        "(--review-threshold's grey zone, or --out-of-depth review).",
    )
    check.add_argument("--model", required=True, metavar="M", help="model folder or Hugging Face id")
    check.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when available)")
    _input_options(check)
    add_policy_arguments(check)
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.set_defaults(func=cmd_check)

    prompt = subparsers.add_parser(
        "prompt",
        help="print exactly what the model sees",
        description="Print the Llama Guard 4 prompt for a conversation (no weights needed).",
    )
    prompt.add_argument("--model", required=True, metavar="M", help="model folder or Hugging Face id")
    _input_options(prompt)
    add_policy_arguments(prompt)
    prompt.add_argument("--format", choices=("text", "ids"), default="text", help="text (default) or token ids")
    prompt.set_defaults(func=cmd_prompt)


def _input_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--text", metavar="T", help="one user message to check")
    group.add_argument("--conversation", metavar="FILE.json", help="JSON list of OpenAI-format messages")
    parser.add_argument(
        "--image", action="append", metavar="PATH", help="image file added to the last message (repeatable)"
    )
