"""Model backends: prompt ids (and images) in, answer-token scores and category text out."""

from .base import AnswerScores, AnswerTokens, GuardBackend

__all__ = ["AnswerScores", "AnswerTokens", "GuardBackend"]
