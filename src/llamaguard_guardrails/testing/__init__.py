"""Helpers for tests and demos: a small random-weight Llama Guard 4 checkpoint."""

from .model_factory import make_test_model

__all__ = ["make_test_model"]
