"""The random-weight test model: Llama Guard 4's architecture and tokenizer at toy size (``make-test-model``).

Its verdicts are meaningless; it lets the demo, the notebooks and the tests run every code path
without the 12B weights.
"""

from .factory import SIZES, cache_dir, make_config, make_test_model

__all__ = ["SIZES", "cache_dir", "make_config", "make_test_model"]
