"""Command line: ``llamaguard-guardrails check | prompt | moderate | evaluate | make-test-model | demo | serve``.

One module per command group (:mod:`.check`, :mod:`.moderate`, :mod:`.evaluate`, :mod:`.demo`), each
adding its parsers; :mod:`.common` holds the shared options and the error handling. Exit codes: 0
safe or done, 1 unsafe, 2 bad input or missing model (a one-line message, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from . import check, demo, evaluate, moderate
from . import serve as serve_command
from .common import EXIT_BAD_INPUT, run_command
from .demo import DEMO_CONVERSATIONS

DESCRIPTION = """\
Llama Guard 4 safety checks from the command line.

  check            classify a text or a conversation (exit 0 safe, 1 unsafe, 2 bad input, 3 review)
  prompt           print exactly what the model sees (text or token ids; no weights loaded)
  moderate         classify each conversation of a JSONL/Parquet file: one verdict per line, progress bar
  evaluate         measure the guard on labelled data: precision, recall, F1, FPR, thresholds, plots
  make-test-model  write a small random-weight Llama Guard 4 checkpoint for tests and demos
  demo             classify a few examples (on the test model unless --model is given)
  serve            an OpenAI-compatible /v1/moderations service (OGX, the openai SDK; `serve` extra)

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

exit codes: 0 safe (moderate, evaluate: done), 1 unsafe or the guard failed (fail closed),
2 bad input, bad options or a missing model (one line on stderr saying what to fix; no traceback),
130 interrupted (Ctrl-C).
"""


class _Parser(argparse.ArgumentParser):
    """Bad options: one line on stderr and exit 2 (argparse prints the whole usage otherwise)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``llamaguard-guardrails`` parser, every command added."""
    parser = _Parser(
        prog="llamaguard-guardrails", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what the guard does (INFO level) and transformers' warnings"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (check, demo, moderate, evaluate, serve_command):
        command.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``llamaguard-guardrails`` entry point: parse, set up logging, run the command; the exit code."""
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


__all__ = ["DEMO_CONVERSATIONS", "build_parser", "main"]
