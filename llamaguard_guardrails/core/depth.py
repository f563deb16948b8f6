"""Out of its depth: the language(s) of the checked message and whether Llama Guard 4 is known to judge them.

Llama Guard 4 is supported in eight languages (its model card): English, French, German, Hindi, Italian,
Portuguese, Spanish and Thai; its verdicts on others are weaker. It was evaluated mostly with up to
:data:`TESTED_IMAGES` images per conversation. :func:`assess` names what a verdict should not be trusted on;
the policy's ``out_of_depth`` decides what such a verdict gets (allow, review or block).

Languages come from ``py3langid`` (offline; its model ships in the package; the ``languages`` extra). Without
it, or for text too short or too ambiguous to tell (code, JSON), a verdict names no language and says nothing
about one.

>>> assess_texts(["Bonjour, comment faire du pain ?"], images=0).languages
('fr',)
>>> assess_texts(["Habari yako? Ninaenda sokoni kununua matunda na mboga leo."], images=0).reasons
('language sw is not one Llama Guard 4 supports (en, fr, de, hi, it, pt, es, th)',)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conversation import Conversation

log = logging.getLogger("llamaguard_guardrails")

SUPPORTED_LANGUAGES: dict[str, str] = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "hi": "Hindi",
    "it": "Italian",
    "pt": "Portuguese",
    "es": "Spanish",
    "th": "Thai",
}
"""ISO 639-1 codes of the languages Llama Guard 4 supports (model card)."""

TESTED_IMAGES = 3
"""Images per conversation the model card's evaluation covers (mostly about three); more are out of its depth."""

#: Texts with fewer letters than this are not identified (too short to tell).
MIN_LETTERS = 12
#: A language is named only when the identifier is at least this sure (code and JSON usually are not).
MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Depth:
    """What a check was about: ``languages`` identified in the checked message, and ``reasons`` why its verdict
    should not be trusted (an unsupported language, more images than tested); empty when it can be."""

    languages: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()


@functools.cache
def _identifier() -> Any:
    """The py3langid identifier, or ``None`` when the ``languages`` extra is not installed."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        log.info("py3langid is not installed (pip install 'llamaguard-guardrails[languages]'): no language checks")
        return None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def load_identifier() -> bool:
    """Load the language identifier now (about 0.4 s, once per process) rather than inside the first check's
    deadline; False when the ``languages`` extra is not installed."""
    return _identifier() is not None


def identify(text: str) -> str | None:
    """The ISO 639-1 code of ``text``'s language, or ``None`` (too short, unsure, or no identifier installed)."""
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        return None
    identifier = _identifier()
    if identifier is None:
        return None
    code, confidence = identifier.classify(text)
    return str(code) if confidence >= MIN_CONFIDENCE else None


def assess_texts(texts: Iterable[str], *, images: int) -> Depth:
    """The depth report of a checked message with these ``texts`` in a conversation with ``images`` images."""
    languages = tuple(dict.fromkeys(code for code in map(identify, texts) if code is not None))
    reasons = [
        f"language {code} is not one Llama Guard 4 supports ({', '.join(SUPPORTED_LANGUAGES)})"
        for code in languages
        if code not in SUPPORTED_LANGUAGES
    ]
    if images > TESTED_IMAGES:
        reasons.append(f"{images} images: the model card's evaluation covers up to about {TESTED_IMAGES}")
    return Depth(languages, tuple(reasons))


def assess(conversation: Conversation) -> Depth:
    """The depth report of ``conversation``'s checked (last) message."""
    checked = conversation.checked_message_index
    texts = [text for _, block in conversation.blocks() if block.source == checked for text in block.texts]
    return assess_texts(texts, images=len(conversation.images))


__all__ = [
    "MIN_CONFIDENCE",
    "MIN_LETTERS",
    "SUPPORTED_LANGUAGES",
    "TESTED_IMAGES",
    "Depth",
    "assess",
    "assess_texts",
    "identify",
]
