"""The compiled Unigram counts: the same number of pieces as ``tokenizers``' Unigram model, ties included."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from kosparse.unigram import UnigramTrie, all_marked


def _code_points(words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cp = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    ends = np.cumsum(lengths)
    return cp, ends - lengths, ends


def _random_vocab(rng: random.Random, alphabet: str) -> list[tuple[str, float]]:
    """Every letter and "▁" on its own, plus random longer pieces; scores on a coarse grid, so that many
    segmentations tie and the tie-breaking is tested too."""
    pieces = {"<unk>": 0.0, "▁": -2.0, **{c: -float(rng.randrange(2, 9)) for c in alphabet}}
    while len(pieces) < 60:
        piece = ("▁" if rng.random() < 0.4 else "") + "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 6)))
        pieces[piece] = -rng.randrange(2, 24) / 2
    return list(pieces.items())


def test_counts_equal_the_tokenizers_unigram_model() -> None:
    rng = random.Random(11)
    alphabet = "ab가각"
    for _ in range(20):
        vocab = _random_vocab(rng, alphabet)
        tok = Tokenizer(models.Unigram(vocab, unk_id=0))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        words = list(dict.fromkeys("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 14)))
                                   for _ in range(300)))
        expected = [len(tok.encode(w, add_special_tokens=False).ids) for w in words]
        assert UnigramTrie(vocab).counts(*_code_points(words)).tolist() == expected


def test_ties_keep_the_first_segmentation_offered() -> None:
    # "▁ab" alone and "▁a" + "b" both score -2.0; "▁ab" ends at position 3 first and is kept.
    vocab = [("<unk>", 0.0), ("▁", -5.0), ("a", -5.0), ("b", -1.0), ("▁a", -1.0), ("▁ab", -2.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=0))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    assert tok.encode("ab", add_special_tokens=False).tokens == ["▁ab"]
    assert UnigramTrie(vocab).counts(*_code_points(["ab"])).tolist() == [1]


def test_a_long_word_and_a_word_without_segmentation() -> None:
    vocab = [("<unk>", 0.0), ("▁", -1.0), ("a", -1.0), ("aa", -1.5)]
    trie = UnigramTrie(vocab)
    tok = Tokenizer(models.Unigram(vocab, unk_id=0))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    long_word = "a" * 301  # past the first work buffers
    counts = trie.counts(*_code_points([long_word, "z", "a"])).tolist()
    assert counts[0] == len(tok.encode(long_word, add_special_tokens=False).ids) == 152
    assert counts[1:] == [-1, 2]  # "z" is no piece: no segmentation (callers never send such words)


def test_the_trie_is_sized_by_its_nodes() -> None:
    trie = UnigramTrie([("abc", -1.0), ("abd", -1.0), ("a", -1.0)])
    assert trie.nodes == 5  # root, a, ab, abc, abd
    assert trie.keys.shape[0] == 16


def test_all_marked() -> None:
    table = np.zeros(0x110000, dtype=bool)
    table[[ord("가"), ord("a")]] = True
    words = ["가a", "가b", "a", "\U0010ffff"]
    assert all_marked(*_code_points(words), table).tolist() == [True, False, True, False]


def test_a_word_without_segmentation_is_an_error_not_a_count() -> None:
    from kosparse.chunk import UnigramWordCounter

    table = np.zeros(0x110000, dtype=bool)
    table[[ord("a"), ord("z")]] = True  # "z" wrongly marked plain: it is no piece
    counter = UnigramWordCounter(UnigramTrie([("<unk>", 0.0), ("▁", -1.0), ("a", -1.0)]), table)
    assert counter.counts(["a", "aa"]) == [2, 3]
    with pytest.raises(RuntimeError, match="no Unigram segmentation"):
        counter.counts(["a", "z"])
