"""Text normalisation for wiki documents: Unicode NFC, WikiExtractor residue, whitespace.

Hand-written because the residue it removes (``formula_7`` placeholders, empty parentheses left where
WikiExtractor dropped a template) is specific to WikiExtractor output; the Unicode part is the stdlib's.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

_PLACEHOLDER = re.compile(r"\b(?:formula|codice)_\d+\b")
# "(, 1924년" -> "(1924년", "(1924년, )" -> "(1924년)", "()" / "( )" / "(; )" / "(, , )" -> ""
# A run of separators counts as one: WikiExtractor leaves "(, , , )" where it dropped several templates.
_OPEN_PUNCT = re.compile(r"\(\s*(?:[,;:]\s*)+")
_CLOSE_PUNCT = re.compile(r"\s*(?:[,;:]\s*)+\)")
_EMPTY_PARENS = re.compile(r"\s?\(\s*\)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2060\ufeff]")
_SPACE = r"[ \t\u00a0\u3000\u2002-\u200a]"
# A run of spaces becomes one " ". Matching only the runs that change (any run holding a space other
# than " ", or two or more characters) leaves the common single " " alone: 5x faster than ``_SPACE+``.
_SPACES = re.compile(rf"[\t\u00a0\u3000\u2002-\u200a]{_SPACE}*| {_SPACE}+")
_LINE_EDGES = re.compile(r" ?\n[ \n]*")
# _CLOSE_PUNCT and _EMPTY_PARENS begin with optional spaces, so the regex engine tries them at every
# position (~80 ns a character). Their mirror images begin with ")", a literal the engine finds with a
# fast search: they run on the reversed text. Their matches never overlap (each ends at its own ")", and
# the spaces before a "(" or a separator run belong to that match alone), so the same spans go either way.
_CLOSE_PUNCT_REV = re.compile(r"\)[\s,;:]*[,;:]\s*")
_EMPTY_PARENS_REV = re.compile(r"\)\s*\(\s?")
_CLOSE_PUNCT_REV_ANY = re.compile(r"\)\s*[,;:]")
# One scan for the characters that the control and space steps act on alone: a text with none of them and
# no "  " (most texts) skips both of those full scans (the later steps only delete characters or write
# parentheses, so they cannot bring such a character in).
_RARE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2060\ufeff\t\u00a0\u3000\u2002-\u200a]")


def normalize_text(text: str) -> str:
    """Normalise a document body or title.

    Steps: NFC; ``\\r\\n``/``\\r`` to ``\\n``; control and zero-width characters removed; WikiExtractor
    placeholders (``formula_N``, ``codice_N``) and the empty or comma-led parentheses they leave removed;
    runs of spaces collapsed; lines stripped; blank lines collapsed so that paragraphs are single lines.

    Args:
        text: Raw text.

    Returns:
        The normalised text (may be empty).
    """
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    rare = _RARE.search(text) is not None
    if rare:
        text = _CONTROL.sub("", text)
    if "formula_" in text or "codice_" in text:
        text = _PLACEHOLDER.sub("", text)
    if "(" in text:
        text = _OPEN_PUNCT.sub("(", text)
        rev = text[::-1]
        if _CLOSE_PUNCT_REV_ANY.search(rev):  # = _CLOSE_PUNCT.sub(")", text)
            rev = _CLOSE_PUNCT_REV.sub(")", rev)
        rev = _EMPTY_PARENS_REV.sub("", rev)  # = _EMPTY_PARENS.sub("", text)
        text = rev[::-1]
    if rare or "  " in text:
        text = _SPACES.sub(" ", text)
    if " \n" in text or "\n " in text or "\n\n" in text:  # what _LINE_EDGES matches; substring tests are fast
        # = _LINE_EDGES.sub("\n", text) here, where no run of two spaces is left: lines lose the space at
        # either end and empty lines go. The regex begins with an optional space, so it is tried at every
        # position (80 ns a character); this costs a few string operations per line.
        text = "\n".join(line for line in (part.strip(" ") for part in text.split("\n")) if line)
    return text.strip()


def hangul_ratio(text: str) -> float:
    """Fraction of non-whitespace characters that are Hangul syllables (U+AC00–U+D7A3).

    Vectorised with NumPy over the UTF-32 code points (a Python loop over a 1 GB corpus is too slow).

    Args:
        text: Normalised text.

    Returns:
        A value in [0, 1]; 0.0 for text with no non-whitespace character.
    """
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    non_space = int(cps.size - np.count_nonzero((cps == 32) | (cps == 10)))
    if non_space == 0:
        return 0.0
    hangul = int(np.count_nonzero((cps >= 0xAC00) & (cps <= 0xD7A3)))
    return hangul / non_space
