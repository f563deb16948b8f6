"""Deprecated path: the test model's builder lives in :mod:`llamaguard_guardrails.test_model` (for one release)."""

from __future__ import annotations

import warnings

from ..test_model.factory import SIZES, TEST_MODEL_MARKER, cache_dir, make_config, make_processor, make_test_model

warnings.warn(
    "llamaguard_guardrails.testing.model_factory is deprecated: import from llamaguard_guardrails.test_model",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["SIZES", "TEST_MODEL_MARKER", "cache_dir", "make_config", "make_processor", "make_test_model"]
