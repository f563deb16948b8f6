"""Logging: quiet by default (warnings only), verbose on request, verdicts to a logger for audit, progress bars."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .core.verdict import Verdict

LOGGER = "llamaguard_guardrails"


def enable_logging(level: int | str = "INFO", *, transformers: bool = False) -> logging.Logger:
    """Show this library's log records at ``level`` and up (INFO: model loading; DEBUG: every verdict).

    Adds a stderr handler unless the application has configured logging (its handlers are used then).
    ``transformers=True`` also turns on transformers' INFO messages. Returns the library's logger.
    """
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    if transformers:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_info()
    return logger


def log_verdicts(name: str = f"{LOGGER}.audit", level: int = logging.INFO) -> Callable[[Verdict, str], None]:
    """An ``on_verdict`` audit hook logging each verdict and its stage as one JSON line:
    ``LlamaGuard.from_pretrained(M, on_verdict=log_verdicts())`` (or any adapter's ``on_verdict=``).

    Records go to the handlers of logger ``name`` (add one, e.g. a ``FileHandler``) or of the root logger.
    """
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(level)  # let the records through whatever the root level is

    def on_verdict(verdict: Verdict, stage: str) -> None:
        logger.log(level, json.dumps({"stage": stage, "verdict": verdict.model_dump(mode="json")}))

    return on_verdict


def progress_bar(total: int | None, *, unit: str, desc: str, enabled: bool = True) -> Any:
    """A tqdm progress bar (stderr, or a widget in notebooks) over ``total`` units; a no-op bar when not
    ``enabled``. Use it as a context manager and call ``update(n)``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit=unit, desc=desc, dynamic_ncols=True)
