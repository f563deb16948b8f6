"""Command line: ``llamaguard-guardrails check | prompt | make-test-model | demo``.

Exit codes: 0 safe, 1 unsafe, 2 bad input or missing model (a one-line message, no traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .cli_policy import add_policy_arguments, policy_from_args
from .core.errors import GuardError, InvalidConversationError

EXIT_SAFE, EXIT_UNSAFE, EXIT_BAD_INPUT = 0, 1, 2

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
2 bad input, bad options or a missing model (one line on stderr saying what to fix).
"""


class _BadInput(Exception):
    pass


def _conversation(args: argparse.Namespace) -> list[dict[str, Any]]:
    if getattr(args, "text", None) is not None:
        messages: list[dict[str, Any]] = [{"role": "user", "content": args.text}]
    else:
        path = Path(args.conversation)
        try:
            messages = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise _BadInput(f"conversation file {path} does not exist") from exc
        except json.JSONDecodeError as exc:
            raise _BadInput(f"{path} is not valid JSON: {exc}") from exc
        if isinstance(messages, dict) and "messages" in messages:
            messages = messages["messages"]
        if not isinstance(messages, list):
            raise _BadInput(f"{path} must hold a JSON list of messages")
    for image in getattr(args, "image", None) or []:
        if not Path(image).is_file():
            raise _BadInput(f"image file {image} does not exist")
        last = messages[-1]
        content = last.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        parts.insert(0, {"type": "image", "path": Path(image)})  # a Path: opened (strings never are)
        last["content"] = parts
    return messages


def _load_guard(args: argparse.Namespace):
    from .guard import LlamaGuard

    return LlamaGuard.from_pretrained(args.model, device=getattr(args, "device", None))


def cmd_check(args: argparse.Namespace) -> int:
    messages = _conversation(args)
    policy = policy_from_args(args)
    guard = _load_guard(args)
    verdict = guard.classify(messages, policy=policy)
    if args.json:
        print(verdict.model_dump_json())
    else:
        print(verdict.summary())
    return EXIT_SAFE if verdict.safe else EXIT_UNSAFE


def cmd_prompt(args: argparse.Namespace) -> int:
    from .core.conversation import parse_conversation
    from .guard import load_prompt_builder

    builder = load_prompt_builder(args.model)
    prompt = builder.build(parse_conversation(_conversation(args)), policy_from_args(args))[0]
    if args.format == "ids":
        print(json.dumps(list(prompt.input_ids)))
    else:
        sys.stdout.write(builder.decode(prompt.input_ids) + "\n")
    return EXIT_SAFE


def cmd_make_test_model(args: argparse.Namespace) -> int:
    from .testing.model_factory import make_test_model

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
    from .testing.model_factory import cache_dir, make_test_model

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
    verdicts = guard.classify_batch([conv for _, conv in DEMO_CONVERSATIONS])
    width = max(len(name) for name, _ in DEMO_CONVERSATIONS)
    for (name, _), verdict in zip(DEMO_CONVERSATIONS, verdicts):
        print(f"{name:<{width}}  {verdict.checked_role:<5}  {verdict.summary()}")
    return EXIT_SAFE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if not sys.stderr.isatty():  # loading 24 GB takes a while: keep the progress bar on a terminal
            hf_logging.disable_progress_bar()
    try:
        return args.func(args)
    except (_BadInput, InvalidConversationError, GuardError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
