"""How a student's tokenizer treats Hangul — the check issue #5 asks for before training a hub student.

Uncased BERT tokenizers (``do_lower_case`` with accent stripping, as in ``bert-base-multilingual-uncased``,
the vocabulary of ``opensearch-neural-sparse-encoding-multilingual-v1``) normalise text with NFD and drop
combining marks. NFD splits every Hangul syllable into conjoining Jamo (U+1100–U+11FF), which are letters,
not marks, so they survive: WordPiece then sees ``ᄆ ᅥ ᄉ ᅵ ᆫ …`` instead of ``머신``, and a Korean word
becomes many Jamo pieces (or ``[UNK]``). The output vectors are then over Jamo pieces, which matters for
every Korean figure and for what ``kosparse explain`` shows. This module measures it on real text, from the
tokenizer's own normaliser and tokens, so the same report runs on the offline student and on a hub model.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any


def is_syllable(ch: str) -> bool:
    """A precomposed Hangul syllable (U+AC00–U+D7A3)."""
    return "\uac00" <= ch <= "\ud7a3"


def is_jamo(ch: str) -> bool:
    """A conjoining Hangul Jamo (U+1100–U+11FF) or a Hangul compatibility Jamo (U+3130–U+318F)."""
    return "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"


def normalize(tokenizer: Any, text: str) -> str:
    """The text as the tokenizer's normaliser leaves it (identity when it has none)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    norm = getattr(backend, "normalizer", None) if backend is not None else None
    return norm.normalize_str(text) if norm is not None else text


def hangul_report(tokenizer: Any, texts: Iterable[str], examples: int = 6) -> dict[str, Any]:
    """Share of Hangul syllables kept by the normaliser, share of Hangul tokens made of Jamo, ``[UNK]`` share
    and pieces per Korean word, with a few tokenized examples.

    ``decomposes_hangul`` is true when fewer than half the syllables survive normalisation.
    """
    unk = getattr(tokenizer, "unk_token", None)
    syl_in = syl_out = 0
    tokens_total = hangul_tokens = jamo_tokens = unk_tokens = 0
    ko_words = ko_word_pieces = 0
    shown: list[dict[str, Any]] = []
    for text in texts:
        syl_in += sum(map(is_syllable, text))
        syl_out += sum(map(is_syllable, normalize(tokenizer, text)))
        toks = tokenizer.tokenize(text)
        tokens_total += len(toks)
        unk_tokens += sum(t == unk for t in toks)
        for t in toks:
            if any(is_syllable(c) or is_jamo(c) for c in t):
                hangul_tokens += 1
                jamo_tokens += any(is_jamo(c) for c in t)
        for word in text.split():
            if any(is_syllable(c) for c in word):
                ko_words += 1
                ko_word_pieces += len(tokenizer.tokenize(word))
        if len(shown) < examples:
            shown.append({"text": text[:80], "tokens": [unicodedata.normalize("NFC", t) for t in toks[:24]],
                          "tokens_raw": toks[:24]})
    kept = syl_out / syl_in if syl_in else 1.0
    return {"syllables_in": syl_in, "syllables_kept": kept,
            "jamo_token_share": jamo_tokens / hangul_tokens if hangul_tokens else 0.0,
            "unk_share": unk_tokens / tokens_total if tokens_total else 0.0,
            "pieces_per_korean_word": ko_word_pieces / ko_words if ko_words else 0.0,
            "decomposes_hangul": kept < 0.5, "examples": shown}
