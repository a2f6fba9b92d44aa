"""Chunking: exact packing on a word-level toy tokenizer, then the real path with a trained tokenizer."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kosparse.chunk import Packer, TokenOffsets, chunk_documents, make_splitter, passage_budget
from kosparse.ingest import DOCUMENT_SCHEMA


def word_offsets(text: str) -> TokenOffsets:
    """One token per whitespace-separated word (offsets include the preceding space, like Metaspace)."""
    offs = []
    for m in re.finditer(r"\S+", text):
        start = m.start() - 1 if m.start() > 0 else 0
        offs.append((start, m.end()))
    return TokenOffsets(offs)


def period_split(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for m in re.finditer(r"\. ", text):
        spans.append((pos, m.start() + 1))
        pos = m.end()
    spans.append((pos, len(text)))
    return spans


def packer(budget: int, overlap: int = 1, min_tokens: int = 2) -> Packer:
    return Packer(budget, overlap, min_tokens, period_split)


def test_token_offsets_count_and_cut() -> None:
    text = "a bb ccc\ndd e"
    offs = word_offsets(text)
    assert offs.count(0, len(text)) == 5
    assert offs.count(0, 8) == 3 and offs.count(9, len(text)) == 2
    assert [text[a:b] for a, b in offs.cut(0, len(text), 2)] == ["a bb", " ccc\ndd", " e"]


def test_short_document_is_one_passage() -> None:
    text = "가 나 다. 라 마.\n바 사."
    [p] = packer(10).pack(text, word_offsets(text))
    assert p.text == text and p.tokens == 7 and p.sentence_starts == [0, 12]


def test_packing_overlap_and_sentence_boundaries() -> None:
    text = "s1 a b. s2 c d. s3 e f.\ns4 g h. s5 i j."
    passages = packer(7).pack(text, word_offsets(text))
    assert [p.text for p in passages] == [
        "s1 a b. s2 c d.",
        "s2 c d. s3 e f.",
        "s3 e f.\ns4 g h.",
        "s4 g h. s5 i j.",
    ]
    assert all(p.tokens <= 7 for p in passages)
    assert passages[2].sentence_starts == [0, 8]


def test_no_overlap_and_hard_cut_of_long_sentence() -> None:
    text = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10."
    passages = packer(4, overlap=0, min_tokens=0).pack(text, word_offsets(text))
    assert [p.text for p in passages] == ["w1 w2 w3 w4", "w5 w6 w7 w8", "w9 w10."]


def test_small_room_closes_the_passage_instead_of_splitting() -> None:
    text = "a b c d e f.\ng h i."
    # 6 + 3 > 8 and only 2 tokens of room (< min_tokens 3): the second paragraph starts a new passage whole
    ps = packer(8, overlap=0, min_tokens=3).pack(text, word_offsets(text))
    assert [p.text for p in ps] == ["a b c d e f.", "g h i."]
    # with min_tokens 2 the room is filled sentence by sentence ("g h i." is one sentence of 3: no fit)
    text2 = "a b c d e f.\ng h. i j."
    ps = packer(8, overlap=0, min_tokens=2).pack(text2, word_offsets(text2))
    assert [p.text for p in ps] == ["a b c d e f.\ng h.", "i j."]


def test_sentencex_spans_cover_korean_sentences() -> None:
    split = make_splitter("sentencex")
    text = "대한민국의 수도는 서울이다. 서울은 한강을 끼고 있다! 인구는 얼마일까?"
    expected = ["대한민국의 수도는 서울이다.", "서울은 한강을 끼고 있다!", "인구는 얼마일까?"]
    assert [text[a:b] for a, b in split(text)] == expected
    with pytest.raises(ValueError, match="unknown sentence splitter"):
        make_splitter("nltk")


def _documents(tmp_path: Path, n: int) -> Path:
    sentences = ["대한민국의 수도는 서울이다.", "서울은 한강을 끼고 있다.", "머신러닝은 인공지능의 한 분야이다.",
                 "딥러닝은 신경망을 쓴다.", "지미 카터는 미국의 39대 대통령이다."]
    rows = []
    for i in range(n):
        paras = [" ".join(sentences[(i + j + k) % 5] for k in range(2 + (i + j) % 4)) for j in range(1 + i % 6)]
        text = "\n".join(paras)
        rows.append({"source": "wiki", "id": str(i), "url": f"u{i}", "title": f"t{i}", "text": text,
                     "language": "ko", "n_chars": len(text), "hangul_ratio": 1.0})
    path = tmp_path / "documents.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA), path)
    return path


def test_chunk_documents_real_tokenizer(tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    docs = _documents(tmp_path, 40)
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir).backend_tokenizer
    budget = passage_budget(tok, 40, "passage: ")
    out1, out2 = tmp_path / "p1.parquet", tmp_path / "p2.parquet"
    stats = chunk_documents(docs, out1, tmp_path / "r1.json", str(tiny_tokenizer_dir), budget, 1, 4, workers=1,
                            batch_docs=7)
    chunk_documents(docs, out2, tmp_path / "r2.json", str(tiny_tokenizer_dir), budget, 1, 4, workers=2, batch_docs=7)
    t1, t2 = pq.read_table(out1), pq.read_table(out2)
    assert t1.equals(t2)  # deterministic whatever the worker count
    rows = t1.to_pylist()
    assert stats.documents == 40 and stats.passages == len(rows) > 40
    for r in rows:
        full = len(tok.encode("passage: " + r["text"], add_special_tokens=True).ids)
        assert full <= 40, (r["passage_id"], full)
        assert r["text"].endswith(".")  # every passage ends at a sentence boundary
        assert r["passage_id"] == f"wiki:{r['doc_id']}#{r['chunk_index']}"
    by_doc: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        by_doc.setdefault(str(r["doc_id"]), []).append(r)
    for parts in by_doc.values():
        assert [p["chunk_index"] for p in parts] == list(range(len(parts)))
        for a, b in zip(parts, parts[1:], strict=False):
            last_sentence = str(a["text"])[max(a["sentence_starts"]):]  # type: ignore[call-overload]
            assert str(b["text"]).startswith(last_sentence)  # one sentence of overlap


# --- word-level token counts (WordTokenCounter) -------------------------------------------------

WORD_TEXTS = [
    "대한민국의 수도는 서울이다. 서울은 한강을 끼고 있다.\n머신러닝은 인공지능의 한 분야이다.",
    "  machine learning,  deep-learning\tand (neural) networks!  ",
    "지미 카터는 미국의 39대 대통령이다.그는 조지아주에서 태어났다.",
    "",
    "ㄱㄴㄷ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ① ＡＢＣ 大韓民國",
]


def _check_word_counts(tok: object, texts: list[str]) -> None:
    from kosparse.chunk import WordTokenCounter

    counter = WordTokenCounter(tok, capacity=50)  # small: the cache is cleared along the way
    for text in texts:
        enc = tok.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
        exact, words = TokenOffsets(enc.offsets), counter.offsets(text)
        assert words.count(0, len(text)) == len(enc.ids), text
        for m in re.finditer(r"\S+(\s+\S+)*", text):  # spans from one word start to a later word end
            for w in re.finditer(r"\S+", text[m.start():]):
                b = m.start() + w.end()
                assert words.count(m.start(), b) == exact.count(m.start(), b), (text, m.start(), b)
    assert counter.hits > 0 and counter.misses > 0


def test_word_counts_match_whole_text_tokenization(tiny_tokenizer_dir: Path) -> None:
    from kosparse.chunk import load_backend_tokenizer, splits_on_whitespace

    tok = load_backend_tokenizer(str(tiny_tokenizer_dir))
    assert splits_on_whitespace(tok)
    _check_word_counts(tok, WORD_TEXTS * 2)


def test_word_counts_over_count_a_boundary_inside_a_word(tiny_tokenizer_dir: Path) -> None:
    from kosparse.chunk import WordTokenCounter, load_backend_tokenizer

    tok = load_backend_tokenizer(str(tiny_tokenizer_dir))
    text = "지미 카터는 대통령이다.그는 태어났다."
    cut = text.index("그는")
    words = WordTokenCounter(tok, 100).offsets(text)
    exact = TokenOffsets(tok.encode(text, add_special_tokens=False).offsets)
    # the straddling word "대통령이다.그는" counts whole on both sides: never fewer tokens than exact
    assert words.count(0, cut) >= exact.count(0, cut)
    assert words.count(cut, len(text)) >= exact.count(cut, len(text))
    assert words.count(0, cut) + words.count(cut, len(text)) > len(tok.encode(text, add_special_tokens=False).ids)


def test_byte_level_bpe_is_not_word_countable() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    from kosparse.chunk import splits_on_whitespace

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    assert not splits_on_whitespace(tok)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(split=False)
    assert not splits_on_whitespace(tok)


def test_word_cache_gives_the_same_passages_and_falls_back_on_hard_cuts(tmp_path: Path,
                                                                       tiny_tokenizer_dir: Path) -> None:
    docs = _documents(tmp_path, 30)
    long_sentence = " ".join(["서울은 한강을 끼고 있고"] * 40) + "."  # one sentence over the budget
    table = pq.read_table(docs).to_pylist()
    table[3]["text"] = long_sentence
    pq.write_table(pa.Table.from_pylist(table, schema=DOCUMENT_SCHEMA), docs)
    tok = load_tok(tiny_tokenizer_dir)
    budget = passage_budget(tok, 40, "passage: ")
    a, b = tmp_path / "cached.parquet", tmp_path / "whole.parquet"
    cached = chunk_documents(docs, a, tmp_path / "ra.json", str(tiny_tokenizer_dir), budget, 1, 4, workers=1,
                             word_cache=1000)
    whole = chunk_documents(docs, b, tmp_path / "rb.json", str(tiny_tokenizer_dir), budget, 1, 4, workers=1,
                            word_cache=0)
    assert pq.read_table(a).equals(pq.read_table(b))
    assert cached.exact_retokenized == 1 and whole.exact_retokenized == 0
    assert cached.hard_cuts == whole.hard_cuts > 0
    assert cached.word_cache_hits > cached.word_cache_misses > 0 and whole.word_cache_hits == 0


def load_tok(path: Path) -> object:
    from kosparse.chunk import load_backend_tokenizer

    return load_backend_tokenizer(str(path))


def test_word_counts_exact_for_the_teacher_on_korean_wikipedia(shared_kowiki: Path, offline_teacher: Path) -> None:
    import gzip
    import json

    from kosparse.chunk import splits_on_whitespace
    from kosparse.normalize import normalize_text

    tok = load_tok(offline_teacher)
    assert splits_on_whitespace(tok)
    texts: list[str] = []
    with gzip.open(next(iter(sorted(shared_kowiki.glob("*.jsonl.gz")))), "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"]
            if text:
                texts.extend([text, normalize_text(text)])
            if len(texts) >= 400:
                break
    from kosparse.chunk import UnigramWordCounter, WordTokenCounter

    fast = UnigramWordCounter.build(tok)
    assert fast is not None
    counter = WordTokenCounter(tok, capacity=20_000, fast=fast)  # plain misses: compiled Unigram search
    encs = tok.encode_batch(texts, add_special_tokens=False)  # type: ignore[attr-defined]
    mismatched = [t[:60] for t, e in zip(texts, encs, strict=True)
                  if counter.offsets(t).count(0, len(t)) != len(e.ids)]
    assert not mismatched
    assert counter.fast_counted > 0.9 * counter.misses


# --- compiled Unigram counts for cache misses (UnigramWordCounter) ------------------------------

ODD_WORDS = ["시기에\ufffd", "<s>가", "ＡＢＣ", "①번", "𝔘𝔫𝔦", "ㄱㄴㄷ"]


def test_charsmap_key_starts_cover_every_rewritten_character(offline_teacher: Path) -> None:
    import base64
    import json

    from kosparse.chunk import charsmap_key_starts

    tok = load_tok(offline_teacher)
    spec = json.loads(tok.to_str())  # type: ignore[attr-defined]
    blob = base64.b64decode(spec["normalizer"]["normalizers"][0]["precompiled_charsmap"])
    starts = charsmap_key_starts(blob)
    norm = tok.normalizer  # type: ignore[attr-defined]
    changed = {c for c in range(0x21, 0x10000) if not 0xD800 <= c < 0xE000 and norm.normalize_str(chr(c)) != chr(c)}
    assert changed and changed <= starts  # every character the normaliser rewrites is found in the trie
    assert ord("가") not in starts and ord("a") not in starts


def test_unigram_counts_equal_the_tokenizer_on_plain_words(offline_teacher: Path) -> None:
    from kosparse.chunk import UnigramWordCounter, WordTokenCounter

    tok = load_tok(offline_teacher)
    fast = UnigramWordCounter.build(tok)
    assert fast is not None
    words = list(dict.fromkeys(w for t in WORD_TEXTS + _documents_texts() for w in t.split())) + ODD_WORDS
    plain = fast.plain(words)
    assert plain.sum() > len(words) // 2
    for word in ODD_WORDS:  # rewritten, unknown or special-token characters go to the tokenizer
        assert not fast.plain([word])[0], word
    plain_words = [w for w, p in zip(words, plain, strict=True) if p]
    single = [len(tok.encode(w, add_special_tokens=False).ids) for w in plain_words]  # type: ignore[attr-defined]
    assert fast.counts(plain_words) == single
    mixed = WordTokenCounter(tok, capacity=10, fast=fast)
    rust = WordTokenCounter(tok, capacity=10)
    assert mixed._count(words) == rust._count(words)
    assert mixed.fast_counted == len(plain_words)


def test_rust_counts_do_not_depend_on_a_words_neighbours(offline_teacher: Path) -> None:
    from kosparse.chunk import WordTokenCounter

    tok = load_tok(offline_teacher)
    counter = WordTokenCounter(tok, capacity=10)
    odd = "시기에\ufffd"  # e5's normaliser turns U+FFFD into a space
    inside = len(tok.encode(f"{odd} 다음", add_special_tokens=False).ids) - len(  # type: ignore[attr-defined]
        tok.encode("다음", add_special_tokens=False).ids)  # type: ignore[attr-defined]
    assert counter._count([odd]) == counter._count(["가", odd])[1:] == [inside]


def test_unigram_needs_a_unigram_metaspace_tokenizer(tiny_tokenizer_dir: Path) -> None:
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    from kosparse.chunk import UnigramWordCounter

    assert UnigramWordCounter.build(load_tok(tiny_tokenizer_dir)) is None  # WordPiece
    tok = Tokenizer(models.Unigram([("<unk>", 0.0), ("▁a", -1.0), ("a", -2.0), ("▁", -3.0)], unk_id=0))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    assert UnigramWordCounter.build(tok) is not None
    tok.normalizer = normalizers.Replace(Regex("a+"), "b")  # rewrites letters: not a charsmap
    assert UnigramWordCounter.build(tok) is None
    tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    assert UnigramWordCounter.build(tok) is None


def test_unigram_gives_the_same_passages(tmp_path: Path, offline_teacher: Path) -> None:
    rows = pq.read_table(_documents(tmp_path, 30)).to_pylist()
    rows[4]["text"] += " 시기에\ufffd 끝. ＡＢＣ ① 大韓民國의 <s>가."
    docs = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA), docs)
    budget = passage_budget(load_tok(offline_teacher), 48, "passage: ")
    out = {}
    for flag in (True, False):
        out[flag] = tmp_path / f"p{flag}.parquet"
        stats = chunk_documents(docs, out[flag], tmp_path / f"r{flag}.json", str(offline_teacher), budget, 1, 4,
                                workers=1, unigram_counts=flag)
        assert (stats.misses_counted_by_unigram > 0) == flag
        assert 0 < stats.misses_counted_by_unigram < stats.word_cache_misses or not flag
    assert pq.read_table(out[True]).equals(pq.read_table(out[False]))


def _documents_texts() -> list[str]:
    return ["대한민국의 수도는 서울이다. 서울은 한강을 끼고 있다.", "머신러닝은 인공지능의 한 분야이다.",
            "지미 카터는 미국의 39대 대통령이다. machine-learning (neural) networks! 1,234.5km 2026년"]
