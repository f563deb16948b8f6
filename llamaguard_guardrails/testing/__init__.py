"""Helpers for tests and demos: a small random-weight Llama Guard 4 checkpoint and a scripted model step."""

from .model_factory import make_test_model
from .scripted import ScriptedBackend, keyword_rule, marker_category, marker_probability, scripted_guard

__all__ = [
    "ScriptedBackend",
    "keyword_rule",
    "make_test_model",
    "marker_category",
    "marker_probability",
    "scripted_guard",
]
