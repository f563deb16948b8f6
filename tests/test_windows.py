"""The windowed-release arithmetic every streaming adapter shares (``core/windows.py``), on generated streams."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llamaguard_guardrails import InvalidPolicyError
from llamaguard_guardrails.core import windows
from llamaguard_guardrails.core.windows import TextWindow, validate_window


def test_the_examples_run():
    assert doctest.testmod(windows).failed == 0


@given(
    pieces=st.lists(st.text(max_size=12), min_size=1, max_size=40),
    window=st.integers(1, 50),
    overlap=st.integers(0, 30),
)
def test_a_safe_check_releases_exactly_the_chunks_that_end_overlap_before_its_end(pieces, window, overlap):
    text = TextWindow(window, overlap)
    released = 0
    for piece in pieces:
        if text.add(piece):
            assert text.length - max(text.checked, 0) >= window
            count = text.release(text.length)
            cut = text.length - overlap
            assert all(end <= cut for end in text.ends[:count])  # released: checked with overlap after it
            assert count == len(text.ends) or text.ends[count] > cut  # held: everything after the cut
            assert count >= released  # nothing released twice, nothing taken back
            released = count
        else:
            assert text.length - max(text.checked, 0) < window


@pytest.mark.parametrize(
    ("mode", "size", "overlap"), [("fast", 10, 1), ("windowed", 0, 1), ("windowed", 10, -1), ("windowed", 1.5, 0)]
)
def test_bad_window_options_are_typed_errors(mode, size, overlap):
    with pytest.raises(InvalidPolicyError):
        validate_window(mode, size, overlap)
