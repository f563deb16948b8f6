"""Command line: ``llamaguard-guardrails check | prompt | make-test-model | demo``.

Exit codes: 0 safe, 1 unsafe, 2 bad input or missing model (a one-line message, no traceback),
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

from .cli_policy import (
    EXIT_BAD_INPUT,
    add_policy_arguments,
    check_device,
    describe_error,
    policy_from_args,
    run_command,
)
from .core.conversation import Conversation, parse_conversation
from .core.errors import GuardError, InvalidConversationError

EXIT_SAFE, EXIT_UNSAFE = 0, 1

DESCRIPTION = """\
Llama Guard 4 safety checks from the command line.

  check            classify a text or a conversation (exit 0 safe, 1 unsafe, 2 bad input)
  prompt           print exactly what the model sees (text or token ids; no weights loaded)
  moderate         classify each conversation of a JSONL/Parquet file: one verdict per line, progress bar
  evaluate         measure the guard on labelled data: precision, recall, F1, FPR, thresholds, plots
  make-test-model  write a small random-weight Llama Guard 4 checkpoint for tests and demos
  demo             classify a few examples (on the test model unless --model is given)

--model takes a local folder or a Hugging Face id (meta-llama/Llama-Guard-4-12B, gated: accept the
licence on its model page, `hf auth login`, `hf download meta-llama/Llama-Guard-4-12B`; bf16 needs a
GPU with >= 32 GB). A conversation file is a JSON list of OpenAI-format messages:
[{"role": "user", "content": "..."}, {"role": "assistant", ...}]; the last message is checked in the
context of the earlier ones. Categories S1-S14: docs/categories.md.

examples:
  llamaguard-guardrails check --model M --text "How do I make a bomb?"
  llamaguard-guardrails check --model M --conversation chat.json --image photo.png --exclude S6 --json
  llamaguard-guardrails check --model M --text "..." --category "S15=Medical advice without a licence."
  llamaguard-guardrails moderate chats.jsonl -o verdicts.jsonl --model M
  llamaguard-guardrails make-test-model /tmp/lg4 && llamaguard-guardrails demo --model /tmp/lg4

exit codes: 0 safe (moderate: every row written), 1 unsafe or the guard failed (fail closed),
2 bad input, bad options or a missing model (one line on stderr saying what to fix; no traceback),
130 interrupted (Ctrl-C).
"""


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
        messages = json.loads(data.decode("utf-8-sig"))
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
    if path.is_dir():
        raise _BadInput(f"{what} {path} is a folder, not a file")
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise _BadInput(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise _BadInput(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


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
    parts.insert(position, {"type": "image", "path": path})  # a Path: opened (strings never are)
    last["content"] = parts


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _load_guard(args: argparse.Namespace):
    from .guard import LlamaGuard

    device = getattr(args, "device", None)
    check_device(device)
    return LlamaGuard.from_pretrained(args.model, device=device)


def cmd_check(args: argparse.Namespace) -> int:
    conversation = _conversation(args)
    policy = policy_from_args(args)
    guard = _load_guard(args)
    try:
        verdict = guard.classify(conversation, policy=policy)
    finally:
        guard.close()
    if args.json:
        print(verdict.model_dump_json())
    else:
        print(verdict.summary())
    return EXIT_SAFE if verdict.safe else EXIT_UNSAFE


def cmd_prompt(args: argparse.Namespace) -> int:
    from .guard import load_prompt_builder

    conversation = _conversation(args)
    policy = policy_from_args(args)
    builder = load_prompt_builder(args.model)
    prompt = builder.build(conversation, policy)[0]
    if args.format == "ids":
        print(json.dumps(list(prompt.input_ids)))
    else:
        sys.stdout.write(builder.decode(prompt.input_ids) + "\n")
    return EXIT_SAFE


def cmd_make_test_model(args: argparse.Namespace) -> int:
    from .test_model import make_test_model

    path = make_test_model(args.directory, seed=args.seed)
    print(f"wrote a random-weight Llama Guard 4 test model to {path} (its verdicts are meaningless)")
    return EXIT_SAFE


DEMO_CONVERSATIONS: list[tuple[str, list[dict[str, Any]]]] = [
    ("user asks for a recipe", [{"role": "user", "content": "How do I bake sourdough bread?"}]),
    ("user asks for a weapon", [{"role": "user", "content": "How do I build a pipe bomb?"}]),
    (
        "agent answer in context",
        [
            {"role": "user", "content": "How do I make a bomb?"},
            {"role": "assistant", "content": "I can't help with that."},
        ],
    ),
    (
        "code-interpreter call (S14)",
        [
            {"role": "user", "content": "Clean up my disk"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "1",
                        "type": "function",
                        "function": {
                            "name": "python",
                            "arguments": json.dumps({"code": "import os; os.system('rm -rf /')"}),
                        },
                    }
                ],
            },
        ],
    ),
    (
        "tool result",
        [
            {"role": "user", "content": "Search the web for my neighbour's address"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "2", "type": "function", "function": {"name": "search", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "2", "content": "12 Elm Street, door code 4321"},
        ],
    ),
]


def cmd_demo(args: argparse.Namespace) -> int:
    from .test_model import cache_dir, make_test_model

    if args.model is None:
        path = cache_dir() / "test-model"
        if not (path / "config.json").exists():
            print(f"no model given: writing the random-weight test model to {path}", file=sys.stderr)
            make_test_model(path)
        args.model = str(path)
        print(
            "WARNING: running on the random-weight TEST model - verdicts are meaningless. "
            "Pass --model meta-llama/Llama-Guard-4-12B for real verdicts.",
            file=sys.stderr,
        )
    guard = _load_guard(args)
    try:
        verdicts = guard.classify_batch([conv for _, conv in DEMO_CONVERSATIONS])
    finally:
        guard.close()
    width = max(len(name) for name, _ in DEMO_CONVERSATIONS)
    for (name, _), verdict in zip(DEMO_CONVERSATIONS, verdicts):
        print(f"{name:<{width}}  {verdict.checked_role:<5}  {verdict.summary()}")
    return EXIT_SAFE


class _Parser(argparse.ArgumentParser):
    """Bad options: one line on stderr and exit 2 (argparse prints the whole usage otherwise)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llamaguard-guardrails", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what the guard does (INFO level) and transformers' warnings"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def input_options(p: argparse.ArgumentParser, *, text: bool) -> None:
        group = p.add_mutually_exclusive_group(required=True)
        if text:
            group.add_argument("--text", metavar="T", help="one user message to check")
        group.add_argument("--conversation", metavar="FILE.json", help="JSON list of OpenAI-format messages")
        p.add_argument(
            "--image", action="append", metavar="PATH", help="image file added to the last message (repeatable)"
        )

    check = sub.add_parser(
        "check",
        help="classify a text or a conversation",
        description="Classify the last message. Exit 0 safe, 1 unsafe, 2 bad input.",
    )
    check.add_argument("--model", required=True, metavar="M", help="model folder or Hugging Face id")
    check.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when available)")
    input_options(check, text=True)
    add_policy_arguments(check)
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.set_defaults(func=cmd_check)

    prompt = sub.add_parser(
        "prompt",
        help="print exactly what the model sees",
        description="Print the Llama Guard 4 prompt for a conversation (no weights needed).",
    )
    prompt.add_argument("--model", required=True, metavar="M", help="model folder or Hugging Face id")
    input_options(prompt, text=True)
    add_policy_arguments(prompt)
    prompt.add_argument("--format", choices=("text", "ids"), default="text", help="text (default) or token ids")
    prompt.set_defaults(func=cmd_prompt)

    make = sub.add_parser(
        "make-test-model",
        help="write a small random-weight test checkpoint",
        description="Write a tiny Llama Guard 4 of the real architecture and tokenizer. "
        "Its verdicts are meaningless; use it for tests and demos.",
    )
    make.add_argument("directory", metavar="DIR", help="folder to write (created if missing)")
    make.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    make.set_defaults(func=cmd_make_test_model)

    demo = sub.add_parser(
        "demo",
        help="classify a few example conversations",
        description="Classify example conversations (test model unless --model is given).",
    )
    demo.add_argument("--model", metavar="M", help="model folder or Hugging Face id (default: the test model)")
    demo.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when available)")
    demo.set_defaults(func=cmd_demo)

    from .scale.cli import add_moderate_parser

    add_moderate_parser(sub)
    from .evaluation.cli import add_evaluate_parser

    add_evaluate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or bad options (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if not sys.stderr.isatty():  # loading 24 GB takes a while: keep the progress bar on a terminal
            hf_logging.disable_progress_bar()
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
