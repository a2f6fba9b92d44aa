"""The Hangul check: an uncased BERT tokenizer decomposes syllables into Jamo; XLM-R's keeps them."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from kosparse.tokenization import hangul_report, is_jamo

TEXTS = ["머신러닝", "검색 엔진", "서울은 대한민국의 수도이다"]


def _bert(**kwargs: object) -> object:
    from transformers import BertTokenizerFast

    # a vocabulary holding both the syllables and their Jamo, so only the normaliser decides which are used
    chars = sorted({c for t in TEXTS for c in t if not c.isspace()})
    jamo = sorted({j for c in chars for j in unicodedata.normalize("NFD", c)})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *jamo, *[f"##{c}" for c in chars + jamo]]
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(dict.fromkeys(vocab))}, **kwargs)


def test_uncased_bert_decomposes_hangul_into_jamo() -> None:
    report = hangul_report(_bert(do_lower_case=True), TEXTS)
    assert report["syllables_kept"] == 0.0 and report["decomposes_hangul"]
    assert report["jamo_token_share"] == 1.0
    assert all(is_jamo(c) for c in "".join(report["examples"][0]["tokens_raw"]).replace("##", ""))
    # "머신러닝" is 4 syllables, 10 Jamo: one piece per Jamo with this vocabulary
    assert len(report["examples"][0]["tokens_raw"]) == 10


def test_without_accent_stripping_syllables_survive() -> None:
    report = hangul_report(_bert(do_lower_case=True, strip_accents=False), TEXTS)
    assert report["syllables_kept"] == 1.0 and not report["decomposes_hangul"]
    assert report["jamo_token_share"] == 0.0


def test_offline_student_tokenizer_keeps_syllables(offline_teacher: Path) -> None:
    from transformers import AutoTokenizer

    report = hangul_report(AutoTokenizer.from_pretrained(str(offline_teacher)), TEXTS)
    assert report["syllables_kept"] == 1.0 and report["jamo_token_share"] == 0.0 and report["unk_share"] == 0.0
    assert 1.0 <= report["pieces_per_korean_word"] < 4.0
