"""Unit tests of text normalisation and the Hangul ratio (exact values)."""

from __future__ import annotations

import unicodedata

from kosparse.normalize import hangul_ratio, normalize_text


def test_nfc_and_wikiextractor_residue() -> None:
    decomposed = unicodedata.normalize("NFD", "한국어")
    raw = f"제임스 카터(, 1924년 10월 1일 ~ )는 {decomposed} formula_1 공식() 이다.\r\n\r\n\n  둘째   줄 \t"
    assert normalize_text(raw) == "제임스 카터(1924년 10월 1일 ~ )는 한국어 공식 이다.\n둘째 줄"


def test_trailing_comma_and_empty_parens() -> None:
    assert normalize_text("서울(, )특별시 (Seoul, ) 와 ( ) 끝") == "서울특별시 (Seoul) 와 끝"


def test_runs_of_separators_left_by_dropped_templates() -> None:
    assert normalize_text("만주(, , , )는 지명") == "만주는 지명"
    assert normalize_text("주기율표(週期律表, , )는") == "주기율표(週期律表)는"
    assert normalize_text("장국영(, , 1956년 9월 12일 ~ )") == "장국영(1956년 9월 12일 ~ )"


def test_control_and_zero_width_removed() -> None:
    assert normalize_text("가\u200b나\x07다\ufeff") == "가나다"


def test_hangul_ratio_exact() -> None:
    assert hangul_ratio("가나 ab") == 0.5  # 2 Hangul of 4 non-space
    assert hangul_ratio("   ") == 0.0
    assert hangul_ratio("한국어") == 1.0


def _reference(text: str) -> str:
    """The plain definition of normalize_text: patterns applied without pre-checks, spaces as ``[...]+``.

    Parenthesis fixes apply only to texts with a ``(``, as documented.
    """
    import re

    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2060\ufeff]", "", text)
    text = re.sub(r"\b(?:formula|codice)_\d+\b", "", text)
    if "(" in text:
        text = re.sub(r"\(\s*(?:[,;:]\s*)+", "(", text)
        text = re.sub(r"\s*(?:[,;:]\s*)+\)", ")", text)
        text = re.sub(r"\s?\(\s*\)", "", text)
    text = re.sub(r"[ \t\u00a0\u3000\u2002-\u200a]+", " ", text)
    return re.sub(r" ?\n[ \n]*", "\n", text).strip()


def test_fast_patterns_equal_the_plain_definition() -> None:
    import random

    rng = random.Random(0)
    alphabet = list("가나다 ab(),;:\n\t\r") + ["\u00a0", "\u3000", "\u2003", "\u200b", "  ", "formula_3", "( )"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert normalize_text(text) == _reference(text), repr(text)


def _every_step(text: str) -> str:
    """normalize_text without its shortcuts: each step runs on every text (parenthesis fixes on texts with a "(")."""
    from kosparse import normalize as n

    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = n._CONTROL.sub("", text)
    text = n._PLACEHOLDER.sub("", text)
    if "(" in text:
        text = n._EMPTY_PARENS.sub("", n._CLOSE_PUNCT.sub(")", n._OPEN_PUNCT.sub("(", text)))
    return n._LINE_EDGES.sub("\n", n._SPACES.sub(" ", text)).strip()


def test_shortcuts_change_nothing() -> None:
    import random

    pieces = ["가", "a", " ", "  ", "\n", "\n\n", " \n", "\n ", "\t", "\u00a0", "\u3000", "\u2003", "\x07", "\x0b",
              "\u200b", "\ufeff", "\r\n", "\r", "(", ")", ",", ";", ":", "( )", "(, ", ", )", "formula_1", "codice_2",
              "\u1100\u1161", "\u2028", "\x85"]
    rng = random.Random(3)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 14)))
        assert normalize_text(text) == _every_step(text), repr(text)
