"""The compiled word cache: words as ``str.split`` finds them, exact lookups, bounded size."""

from __future__ import annotations

import random

import numpy as np

from kosparse.chunk import _IS_SPACE
from kosparse.wordtable import PENDING, WordTable

# Every whitespace character str.split knows, plus look-alikes that are not whitespace to it.
SPACES = [chr(c) for c in range(0x3100) if chr(c).isspace()]
NOT_SPACES = ["\u200b", "\ufeff", "\u2060", "\u00ad", "\u3164"]
LETTERS = ["가", "나", "ab", "Ω", "𝔘", "\U0010fffd", "１", *NOT_SPACES]


def _scan(table: WordTable, texts: list[str]) -> tuple[str, list[list[str]], list[list[int]]]:
    """Scan ``texts`` as the chunk stage does; return the joined text, each document's words and slots."""
    joined = "\n".join(texts)
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    ends = np.cumsum(lengths + 1) - 1
    found = table.scan(cp, ends)
    words, slots, pos = [], [], 0
    for n in found.doc_words.tolist():
        words.append([joined[a:b] for a, b in zip(found.starts[pos:pos + n].tolist(), found.ends[pos:pos + n].tolist(),
                                                   strict=True)])
        slots.append(found.slots[pos:pos + n].tolist())
        pos += n
    new = [joined[a:b] for a, b in zip(found.new_starts.tolist(), found.new_ends.tolist(), strict=True)]
    assert len(set(new)) == len(new)  # a new word is reported once per batch
    assert (table.values[found.new_slots] == PENDING).all()
    table.set_counts(found.new_slots, np.array([len(w) for w in new], dtype=np.int32))
    return joined, words, slots


def test_words_are_those_of_str_split() -> None:
    rng = random.Random(7)
    texts = ["".join(rng.choice(LETTERS + SPACES) for _ in range(rng.randrange(0, 60))) for _ in range(300)]
    texts += ["", " ", "\u3000가\u3000", "a\u2028b\x1cc\x85d"]
    _, words, _ = _scan(WordTable(10_000, _IS_SPACE), texts)
    assert words == [t.split() for t in texts]


def test_lookups_are_exact_and_the_table_stays_bounded() -> None:
    rng = random.Random(11)
    vocab = ["".join(rng.choice(LETTERS) for _ in range(rng.randrange(1, 6))) for _ in range(400)]
    table = WordTable(64, _IS_SPACE)  # 128 slots for 400 words: clears, probes and collisions on the way
    seen_counts: dict[str, int] = {}
    for _ in range(40):
        docs = [" ".join(rng.choice(vocab) for _ in range(rng.randrange(0, 12))) for _ in range(3)]
        _, words, slots = _scan(table, docs)
        for ws, ss in zip(words, slots, strict=True):
            for w, s in zip(ws, ss, strict=True):
                assert table.values[s] == len(w)  # the stored count of this very word
                seen_counts[w] = int(table.values[s])
        assert len(table) <= table.capacity
    assert table.clears > 0
    assert len(seen_counts) > table.capacity


def test_a_batch_with_more_words_than_the_capacity_gets_a_larger_table() -> None:
    table = WordTable(8, _IS_SPACE)
    text = " ".join(f"w{i}" for i in range(100))
    _, words, slots = _scan(table, [text, text])
    assert words == [text.split()] * 2
    assert slots[0] == slots[1]
    assert table.capacity >= 100 and len(table) == 100
    assert [int(table.values[s]) for s in slots[0]] == [len(w) for w in text.split()]
