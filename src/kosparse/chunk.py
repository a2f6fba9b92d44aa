"""Chunk: sentence-aware passages under a token budget measured by the teacher's tokenizer.

Each document is tokenized once — word by word through a cache of per-word token counts
(:class:`WordTokenCounter`), or whole — and the token count of any paragraph or sentence is read off
the resulting offsets (the tokenizer is the stage's main cost). Packing works on paragraphs first and splits a
paragraph into sentences only where it has to — when it overflows the current passage, or when its
last sentences are needed as overlap; a document that fits the budget becomes one passage. Every
passage ends at a sentence or paragraph boundary. The packing is hand-written: no maintained library
packs sentences under a *tokenizer-measured* budget with sentence overlap (LangChain's splitters count
characters or re-tokenize every candidate).

Passage ids are ``{source}:{doc_id}#{k}`` with ``k`` counting from 0 within a document.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import struct
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from kosparse.pool import bounded_imap

if TYPE_CHECKING:  # Numba, which kosparse.unigram needs, loads in the workers only (~0.3 s, ~60 MB)
    from kosparse.unigram import UnigramTrie

PASSAGE_SCHEMA = pa.schema([
    ("passage_id", pa.string()),
    ("source", pa.string()),
    ("doc_id", pa.string()),
    ("chunk_index", pa.int32()),
    ("title", pa.string()),
    ("url", pa.string()),
    ("text", pa.string()),
    ("n_tokens", pa.int32()),
    ("sentence_starts", pa.list_(pa.int32())),
])
"""``sentence_starts`` holds the character offsets in ``text`` where a known sentence or paragraph starts."""

Span = tuple[int, int]
SplitFn = Callable[[str], list[Span]]


@dataclass(slots=True)
class Unit:
    """A packable span ``[start, end)`` of the document text: a paragraph, a sentence or a hard cut."""

    start: int
    end: int
    tokens: int
    paragraph: int
    is_paragraph: bool


@dataclass
class Passage:
    """One output passage: a span of the document text (paragraph breaks kept as ``\n``)."""

    text: str
    tokens: int
    sentence_starts: list[int]


@dataclass
class ChunkStats:
    """Counters for the chunk report."""

    documents: int = 0
    passages: int = 0
    single_passage_documents: int = 0
    paragraphs_split: int = 0
    hard_cuts: int = 0
    tokens: int = 0
    exact_retokenized: int = 0
    word_cache_hits: int = 0
    word_cache_misses: int = 0
    misses_counted_by_unigram: int = 0

    def add(self, other: ChunkStats) -> None:
        """Accumulate another batch's counters."""
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


class TokenOffsets:
    """Token counts of any character span of one document, from a single tokenizer pass.

    The document is tokenized once; a token belongs to the span that holds its *last* character (a
    word-start token's offsets include the space or newline before the word, so its first character
    lies in the previous span). This avoids re-tokenizing every paragraph and sentence — the tokenizer
    is the chunk stage's main cost.
    """

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        self.ends = np.fromiter((o[1] for o in offsets), dtype=np.int64, count=len(offsets))

    def count(self, a: int, b: int) -> int:
        """Tokens whose last character lies in ``[a, b)``."""
        return int(np.searchsorted(self.ends, b, "right") - np.searchsorted(self.ends, a, "right"))

    def cut(self, a: int, b: int, limit: int) -> list[Span]:
        """Split ``[a, b)`` after token ends into spans of at most ``limit`` tokens."""
        lo, hi = int(np.searchsorted(self.ends, a, "right")), int(np.searchsorted(self.ends, b, "right"))
        bounds = [int(self.ends[i]) for i in range(lo + limit - 1, hi - 1, limit)]
        edges = [a, *bounds, b]
        return [(x, y) for x, y in zip(edges[:-1], edges[1:], strict=True) if x < y]


@dataclass
class Packer:
    """Packs one document into passages of at most ``budget`` tokens.

    Attributes:
        budget: Maximum tokens per passage text.
        overlap: Sentences carried from the end of one passage to the start of the next.
        min_tokens: Least free room worth filling with the sentences of a paragraph that does not fit
            whole (below it the passage is closed and the paragraph starts the next one).
        split: Sentence splitter: text -> sentence character spans.
    """

    budget: int
    overlap: int
    min_tokens: int
    split: SplitFn
    stats: ChunkStats = field(default_factory=ChunkStats)

    def pack(self, text: str, offsets: TokenOffsets) -> list[Passage]:
        """Pack a normalised document (paragraphs separated by ``\n``) into passages.

        Args:
            text: The document text.
            offsets: Its token offsets.

        Returns:
            Passages in document order; each ends at a sentence or paragraph boundary unless a single
            sentence exceeds the budget (then it is cut at token boundaries).
        """
        self._text, self._tok = text, offsets
        if offsets.count(0, len(text)) <= self.budget:
            self.stats.single_passage_documents += 1
            return [Passage(text, offsets.count(0, len(text)), _paragraph_starts(text))]
        queue: list[Unit] = []
        pos = 0
        for i, para in enumerate(text.split("\n")):
            queue.append(Unit(pos, pos + len(para), offsets.count(pos, pos + len(para)), i, True))
            pos += len(para) + 1
        queue.reverse()  # pop() from the end = next unit
        out: list[tuple[list[Unit], int]] = []  # (units, how many leading units are overlap carry)
        cur: list[Unit] = []
        n_carry = 0
        while queue:
            u = queue.pop()
            if u.tokens > self.budget:
                # A paragraph is split into sentences; a single sentence still too long is cut by tokens.
                queue.extend(reversed(self._sentences(u) if u.is_paragraph else self._cut(u)))
                continue
            # Counting the whole candidate span (not summing units) keeps the budget exact.
            if offsets.count(cur[0].start if cur else u.start, u.end) <= self.budget:
                cur.append(u)
                continue
            used = offsets.count(cur[0].start, cur[-1].end) if cur else 0
            if u.is_paragraph and self.budget - used >= self.min_tokens:
                queue.extend(reversed(self._sentences(u)))  # fill the rest of this passage sentence by sentence
                continue
            if len(cur) > n_carry:  # never emit a passage that only repeats the previous one's overlap
                out.append((cur, n_carry))
                cur = self._overlap(cur, u)
            else:
                cur = []
            n_carry = len(cur)
            queue.append(u)
        if len(cur) > n_carry:
            out.append((cur, n_carry))
        return [self._render(units) for units, _ in out]

    def _unit(self, a: int, b: int, paragraph: int) -> Unit | None:
        """A sentence-level unit for ``[a, b)`` with surrounding whitespace trimmed (None if empty)."""
        text = self._text
        if a < b and (text[a].isspace() or text[b - 1].isspace()):  # most spans come trimmed: no slice
            raw = text[a:b]
            a, b = a + len(raw) - len(raw.lstrip()), b - (len(raw) - len(raw.rstrip()))
        return Unit(a, b, self._tok.count(a, b), paragraph, False) if a < b else None

    def _sentences(self, unit: Unit) -> list[Unit]:
        self.stats.paragraphs_split += 1
        spans = self.split(self._text[unit.start:unit.end])
        units = [self._unit(unit.start + a, unit.start + b, unit.paragraph) for a, b in spans]
        kept = [u for u in units if u is not None]
        return kept or [Unit(unit.start, unit.end, unit.tokens, unit.paragraph, False)]

    def _cut(self, unit: Unit) -> list[Unit]:
        self.stats.hard_cuts += 1
        units = [self._unit(a, b, unit.paragraph) for a, b in self._tok.cut(unit.start, unit.end, self.budget)]
        return [u for u in units if u is not None]

    def _overlap(self, units: list[Unit], nxt: Unit) -> list[Unit]:
        """The last ``overlap`` sentences of ``units`` that still leave room for the unit ``nxt``.

        A trailing whole paragraph is split into sentences first (in place, so the passage it ends
        and the overlap that repeats it agree). When ``nxt`` is a whole paragraph it can itself be split
        to fill the passage, so the carry only has to leave ``min_tokens`` of room.
        """
        if not self.overlap or not units:
            return []
        if units[-1].is_paragraph:
            units[-1:] = self._sentences(units[-1])
        carry: list[Unit] = []
        for s in reversed(units[-self.overlap:]):
            fits = (self._tok.count(s.start, units[-1].end) <= self.budget - max(self.min_tokens, 1)
                    if nxt.is_paragraph else self._tok.count(s.start, nxt.end) <= self.budget)
            if not fits:
                break
            carry.insert(0, s)
        return carry

    def _render(self, units: list[Unit]) -> Passage:
        a, b = units[0].start, units[-1].end
        starts = sorted({u.start - a for u in units})
        return Passage(self._text[a:b], self._tok.count(a, b), starts)


class NeedExactOffsets(Exception):
    """Raised by :class:`WordOffsets` when a hard cut needs per-token offsets that word counts lack."""


class WordOffsets(TokenOffsets):
    """Token counts of character spans from per-word counts (see :class:`WordTokenCounter`).

    A span counts every word it overlaps, whole: exact for spans that start and end at whitespace (all
    paragraph and almost all sentence boundaries), and an over-count — never an under-count — when a
    boundary falls inside a word, so a passage can come out a little shorter than the budget but never
    longer.

    Args:
        starts, ends: Character offsets of the document's words.
        cum: Cumulative token counts, ``cum[i]`` = tokens of the first ``i`` words (one longer than
            ``starts``).
    """

    def __init__(self, starts: np.ndarray, ends: np.ndarray, cum: np.ndarray) -> None:
        self.total = int(cum[-1])
        self._first = int(starts[0]) if len(starts) else 0
        self._last = int(ends[-1]) if len(ends) else 0
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = (starts, ends, cum)

    def count(self, a: int, b: int) -> int:
        """Tokens of the words that overlap ``[a, b)``."""
        if a <= self._first and b >= self._last:  # every word: the one question a short document asks
            return self.total
        if self._arrays is not None:
            # Plain lists and ``bisect``: the packer asks for many single counts, where numpy's per-call
            # overhead (~3 µs) costs more than the search itself. Made only for documents that need them.
            starts, ends, cum = self._arrays
            self.starts, self.word_ends, self.cum = starts.tolist(), ends.tolist(), cum.tolist()
            self._arrays = None
        lo = bisect_right(self.word_ends, a)
        hi = bisect_left(self.starts, b)
        return self.cum[hi] - self.cum[lo] if hi > lo else 0

    def cut(self, a: int, b: int, limit: int) -> list[Span]:
        """Not available from word counts: raises :class:`NeedExactOffsets`."""
        raise NeedExactOffsets


_SPACE_CODEPOINTS = np.array([c for c in range(0x3100) if chr(c).isspace()], dtype=np.uint32)
# Lookup table over code points 0..U+3100: the whitespace set ``str.split`` uses (``str.isspace``; none
# lies above U+3000). :mod:`kosparse.wordtable` reads a code point past the table as "not a space".
_IS_SPACE = np.zeros(0x3101, dtype=bool)
_IS_SPACE[_SPACE_CODEPOINTS] = True


_DARTS_LABEL_MASK = (1 << 31) | 0xFF


def _darts_children(units: np.ndarray, pos: int) -> list[tuple[int, int]]:
    """``(byte label, node position)`` of the children of node ``pos`` in a darts-clone double array.

    darts-clone (the trie SentencePiece embeds in ``precompiled_charsmap``) stores a node's children at
    ``pos ^ offset(unit) ^ label``; a child exists when the unit there carries that label.
    """
    unit = int(units[pos])
    base = pos ^ ((unit >> 10) << ((unit & (1 << 9)) >> 6))
    labels = np.arange(1, 256, dtype=np.int64)
    where = base ^ labels
    ok = where < len(units)
    labels, where = labels[ok], where[ok]
    hit = (units[where].astype(np.int64) & _DARTS_LABEL_MASK) == labels
    return list(zip(labels[hit].tolist(), where[hit].tolist(), strict=True))


def charsmap_key_starts(charsmap: bytes) -> set[int]:
    """Code points that begin a key of a SentencePiece ``precompiled_charsmap`` (what it may rewrite).

    A character that begins no key is copied unchanged by the normaliser, whatever follows it. The
    blob is a little-endian u32 trie size, the darts-clone units, then the replacement strings.

    Args:
        charsmap: The raw ``precompiled_charsmap`` bytes (base64-decoded from ``tokenizer.json``).

    Returns:
        The first code point of every key (keys are UTF-8 byte strings).
    """
    (size,) = struct.unpack_from("<I", charsmap)
    units = np.frombuffer(charsmap, dtype="<u4", count=size // 4, offset=4)
    starts: set[int] = set()
    stack: list[tuple[int, bytes]] = [(0, b"")]
    while stack:
        pos, prefix = stack.pop()
        for label, child in _darts_children(units, pos):
            key = prefix + bytes([label])
            need = 1 if key[0] < 0x80 else 2 if key[0] < 0xE0 else 3 if key[0] < 0xF0 else 4
            if len(key) < need:
                stack.append((child, key))
                continue
            try:
                starts.add(ord(key.decode("utf-8")))
            except (UnicodeDecodeError, TypeError):
                continue  # not a well-formed character: no text can reach it
    return starts


class UnigramWordCounter:
    """Exact token counts of single *plain* words through a compiled Unigram search.

    Why: counting the word-cache misses is the chunk stage's main cost, and the Rust ``tokenizers``
    pipeline spends most of it outside the Unigram model (normalised-string alignments, pre-tokenizer
    splits, an ``Encoding`` with offsets): ~15 µs a word on Korean Wikipedia. The model's own search is
    run by :class:`kosparse.unigram.UnigramTrie` on the vocabulary of ``tokenizer.json`` (pieces and
    scores), so any teacher whose tokenizer has that shape qualifies, the hub's multilingual-e5-large as
    well as the offline teacher. (Sessions 5–6 used SentencePiece's C++ encoder here: 2.3–3.1 µs a word
    against ~0.6 µs, the same counts on 1.57 M words.)

    Only *plain* words take this path: words whose every character is a vocabulary piece on its own
    (so the tokenizer needs no ``<unk>``), begins no key of the normaliser's charsmap (so normalisation
    leaves the word unchanged), begins no added token and is not isolated by a character-class
    ``Split`` pre-tokenizer. The rest go to the Rust tokenizer; ``tests/test_chunk.py`` checks the
    counts against whole-text tokenization.

    Use :meth:`build`, which returns ``None`` for a tokenizer of another shape.
    """

    def __init__(self, trie: UnigramTrie, plain_table: np.ndarray) -> None:
        self.trie = trie
        self.plain_table = plain_table

    @classmethod
    def build(cls, tokenizer: Any) -> UnigramWordCounter | None:
        """A counter equivalent to ``tokenizer`` on plain words, or ``None`` when it cannot be one.

        Args:
            tokenizer: A ``tokenizers.Tokenizer``.

        Returns:
            The counter; ``None`` unless the tokenizer is a Unigram model (no byte fallback) behind a
            splitting ``Metaspace`` (optionally followed by character-class ``Split`` steps
            with ``isolated`` behaviour) and a normaliser made of ``Precompiled`` and space-only
            ``Replace`` steps.
        """
        from kosparse.unigram import METASPACE, UnigramTrie

        spec = orjson.loads(tokenizer.to_str())  # 7.7 MB for e5 (orjson: 0.15 s)
        model = spec.get("model") or {}
        if model.get("type") != "Unigram" or model.get("byte_fallback"):
            return None
        charsmaps = _plain_normalizer_charsmaps(spec.get("normalizer"))
        if charsmaps is None or not _plain_pre_tokenizer(spec.get("pre_tokenizer")):
            return None
        vocab: list[list[Any]] = model["vocab"]
        if not vocab:
            return None
        unk_id = model.get("unk_id")
        added = [t["content"] for t in spec.get("added_tokens") or []]
        plain = {ord(p) for i, (p, _) in enumerate(vocab) if len(p) == 1 and i != unk_id and p not in added}
        plain -= {METASPACE} | {c for c in plain if chr(c).isspace()}
        for blob in charsmaps:
            plain -= charsmap_key_starts(blob)
        plain -= {ord(t[0]) for t in added if t}
        pre = tokenizer.pre_tokenizer
        if pre is not None:  # a character-isolating Split cuts "xx" in two
            plain = {c for c in plain if len(pre.pre_tokenize_str(chr(c) * 2)) == 1}
        table = np.zeros(0x110000, dtype=bool)
        table[np.fromiter(plain, dtype=np.int64, count=len(plain))] = True
        return cls(UnigramTrie(vocab), table)

    def plain(self, words: list[str]) -> np.ndarray:
        """Which of ``words`` (non-empty, without whitespace) this counter counts exactly."""
        cp, starts, ends = _word_code_points(words)
        return self.plain_spans(cp, starts, ends)

    def plain_spans(self, cp: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """:meth:`plain` for the words ``cp[starts[i]:ends[i]]`` of a code-point array."""
        from kosparse.unigram import all_marked

        return all_marked(cp, starts, ends, self.plain_table)

    def counts(self, words: list[str]) -> list[int]:
        """Token counts of plain ``words``."""
        cp, starts, ends = _word_code_points(words)
        return self.counts_spans(cp, starts, ends).tolist()

    def counts_spans(self, cp: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """:meth:`counts` for the plain words ``cp[starts[i]:ends[i]]`` of a code-point array."""
        counts = self.trie.counts(cp, starts, ends)
        if len(counts) and int(counts.min()) < 0:  # cannot happen for plain words: never pass a wrong count on
            raise RuntimeError("a word of single-piece characters had no Unigram segmentation")
        return counts


def _word_code_points(words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``words`` as one code-point array and each word's ``[start, end)`` in it."""
    cp = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    ends = np.cumsum(lengths)
    return cp, ends - lengths, ends


def _plain_normalizer_charsmaps(spec: dict[str, Any] | None) -> list[bytes] | None:
    """The charsmaps of a normaliser that only rewrites characters through them, else ``None``.

    ``Precompiled`` steps qualify (their charsmap says which characters they touch) and so do
    ``Replace`` steps whose pattern matches spaces only (a word has none).
    """
    if spec is None:
        return []
    steps = spec.get("normalizers", []) if spec.get("type") == "Sequence" else [spec]
    maps: list[bytes] = []
    for step in steps:
        kind = step.get("type")
        if kind == "Precompiled":
            maps.append(base64.b64decode(step.get("precompiled_charsmap") or b""))
        elif kind == "Replace":
            pattern = step.get("pattern") or {}
            text = pattern.get("String", pattern.get("Regex", ""))
            if text not in {" ", " {2,}", " +"}:
                return None
        else:
            return None
    return [m for m in maps if m]


def _plain_pre_tokenizer(spec: dict[str, Any] | None) -> bool:
    """A splitting Metaspace that prefixes every word, then only character-class isolating Splits."""
    if spec is None:
        return False
    steps = spec.get("pretokenizers", []) if spec.get("type") == "Sequence" else [spec]
    if not steps or steps[0].get("type") != "Metaspace" or steps[0].get("replacement") != "\u2581":
        return False
    first = steps[0]
    if not first.get("split", True) or first.get("prepend_scheme", "always") == "never" or (
            first.get("add_prefix_space") is False):
        return False
    for step in steps[1:]:
        regex = (step.get("pattern") or {}).get("Regex", "")
        if step.get("type") != "Split" or step.get("behavior") != "Isolated" or not (
                regex.startswith("[") and regex.endswith("]") and "]" not in regex[1:-1].replace("\\]", "")):
            return False
    return True


class WordTokenCounter:
    """Token offsets of documents from per-word token counts, cached across documents.

    Why hand-written: the teacher's tokenizers (XLM-R/e5 ``Metaspace``, BERT's ``BertPreTokenizer``)
    split the text on whitespace before the subword model runs, so a word's tokens never depend on its
    neighbours, and the token count of a span made of whole words is the sum of its words' counts. Words
    repeat heavily in a corpus (on 6,000 Korean Wikipedia articles, 3 of every 4 word occurrences are
    repeats), so caching the count per word replaces most tokenizer work with a lookup.
    ``tokenizers`` itself caches only inside its Unigram model (10,000 entries) and still pays
    normalisation, the pre-tokenizer regexes and an ``Encoding`` object per document. The cache is a
    compiled hash table (:class:`kosparse.wordtable.WordTable`) that splits a whole batch of documents
    into words and looks them up without a Python object per word occurrence. The counts are exact
    (``tests/test_chunk.py`` compares them with whole-document tokenization); what they lack is the
    position of a token *inside* a word, so the rare hard cut inside a sentence longer than the budget
    raises :class:`NeedExactOffsets` for the caller to retokenize that document.

    Words new to the cache are counted by :class:`UnigramWordCounter` where the tokenizer allows it
    (plain words) and by the tokenizer itself otherwise.

    Args:
        tokenizer: A ``tokenizers.Tokenizer`` whose pre-tokenizer splits on whitespace.
        capacity: Most cached words; the cache is cleared when it is full (bounded memory).
        fast: Counter for plain words (``None``: the tokenizer counts every miss).
    """

    def __init__(self, tokenizer: Any, capacity: int, fast: UnigramWordCounter | None = None) -> None:
        from kosparse.wordtable import WordTable  # compiled on first use (Numba)

        self.tokenizer = tokenizer
        self.capacity = capacity
        self.fast = fast
        self.table = WordTable(capacity, _IS_SPACE)
        self.hits = 0
        self.misses = 0
        self.fast_counted = 0

    def offsets(self, text: str) -> WordOffsets:
        """Per-word token counts of ``text``."""
        return self.offsets_batch([text])[0]

    def offsets_batch(self, texts: list[str]) -> list[WordOffsets]:
        """Per-word token counts of each of ``texts``, from one pass over the batch's words.

        A word new to the cache counts as one miss however often the batch repeats it; every other
        occurrence is a hit.
        """
        joined = "\n".join(texts)  # a whitespace between documents: no word spans two of them
        cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        doc_ends = np.cumsum(lengths + 1) - 1
        found = self.table.scan(cp, doc_ends)
        if len(found.new_slots):
            self.table.set_counts(found.new_slots, self._count_spans(joined, cp, found.new_starts, found.new_ends))
        self.misses += len(found.new_slots)
        self.hits += len(found.slots) - len(found.new_slots)
        cum = np.zeros(len(found.slots) + 1, dtype=np.int64)
        np.cumsum(self.table.values[found.slots], out=cum[1:])
        bounds = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(found.doc_words, out=bounds[1:])
        out = []
        for d, base in enumerate((doc_ends - lengths).tolist()):
            lo, hi = int(bounds[d]), int(bounds[d + 1])
            out.append(WordOffsets(found.starts[lo:hi] - base, found.ends[lo:hi] - base, cum[lo:hi + 1] - cum[lo]))
        return out

    def _count(self, words: list[str]) -> list[int]:
        """Token counts of ``words`` (non-empty, without whitespace)."""
        cp, starts, ends = _word_code_points(words)
        return self._count_spans("".join(words), cp, starts, ends).tolist()

    def _count_spans(self, text: str, cp: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Token counts of the words ``text[starts[i]:ends[i]]`` (``cp``: the code points of ``text``).

        Plain words are counted by the compiled counter straight from the code points; the others (and
        every word without one) by the tokenizer, which needs them as strings.
        """
        fast = self.fast
        counts = np.zeros(len(starts), dtype=np.int32)
        plain = fast.plain_spans(cp, starts, ends) if fast is not None else np.zeros(len(starts), dtype=bool)
        n_plain = int(plain.sum())
        if fast is not None and n_plain:
            self.fast_counted += n_plain
            counts[plain] = fast.counts_spans(cp, starts[plain], ends[plain])
        if n_plain < len(starts):
            rows = np.flatnonzero(~plain)
            words = [text[a:b] for a, b in zip(starts[rows].tolist(), ends[rows].tolist(), strict=True)]
            counts[rows] = self._count_rust(words)
        return counts

    def _count_rust(self, words: list[str]) -> list[int]:
        """Token counts of ``words`` from one tokenizer call over the words joined by spaces.

        A filler word ends the text, so that the last word, like every other, has a word after it: a
        character that the normaliser turns into a space (e5's does so with U+FFFD) adds a trailing ``▁``
        token when it ends the text and merges with the next word's space otherwise — as inside a
        document.
        """
        if not words:
            return []
        joined = " ".join(words) + f" {_FILLER}"
        enc = self.tokenizer.encode(joined, add_special_tokens=False)
        tok_ends = np.fromiter((o[1] for o in enc.offsets), dtype=np.int64, count=len(enc.offsets))
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        word_ends = np.cumsum(lengths + 1) - 1
        # A token belongs to the word holding its last character; the space before a word counts as the
        # word's (a lone "▁" token ends there).
        before = word_ends - lengths - 1
        counts = np.searchsorted(tok_ends, word_ends, "right") - np.searchsorted(tok_ends, before, "right")
        return counts.tolist()


_FILLER = "a"
"""The word that ends the text in :meth:`WordTokenCounter._count_rust` (any word free of odd characters)."""


def splits_on_whitespace(tokenizer: Any) -> bool:
    """Whether ``tokenizer``'s pre-tokenizer splits on whitespace first (so word counts add up).

    Args:
        tokenizer: A ``tokenizers.Tokenizer``.

    Returns:
        True for ``Metaspace`` (with splitting), ``Whitespace``, ``WhitespaceSplit`` and
        ``BertPreTokenizer``, alone or first in a ``Sequence``; False otherwise (e.g. byte-level BPE,
        which keeps the space inside the next token).
    """
    pre = tokenizer.pre_tokenizer
    # The pickled state of a pre-tokenizer is its JSON: 86 kB for e5, where the whole tokenizer is 7.7 MB
    # (0.27 s a worker to serialise and parse).
    spec = orjson.loads(pre.__getstate__()) if pre is not None else {}
    if spec.get("type") == "Sequence":
        spec = (spec.get("pretokenizers") or [{}])[0]
    kind = spec.get("type")
    if kind == "Metaspace":
        return bool(spec.get("split", True))
    return kind in {"Whitespace", "WhitespaceSplit", "BertPreTokenizer"}


def _paragraph_starts(text: str) -> list[int]:
    starts, pos = [], 0
    for para in text.split("\n"):
        starts.append(pos)
        pos += len(para) + 1
    return starts


# --- splitters and tokenizers (per worker process) ---------------------------------------------

def make_splitter(name: str, language: str = "ko") -> SplitFn:
    """Build a sentence splitter.

    ``sentencex`` (Wikimedia's segmenter) is the default: measured on Korean Wikipedia paragraphs it is
    ~300x faster than kiwipiepy and agrees with kiwipiepy's boundaries at P 0.98 / R 0.98 (see
    README). ``kiwi`` (morphology-based ``Kiwi.split_into_sents``) is available for users who prefer it.

    Args:
        name: ``sentencex`` or ``kiwi``.
        language: Language code for sentencex.

    Returns:
        A function mapping a paragraph to the character spans of its sentences.

    Raises:
        ValueError: On an unknown splitter name.
    """
    if name == "sentencex":
        from sentencex import segment

        def split_sx(text: str) -> list[Span]:
            spans, pos = [], 0
            for sent in segment(language, text):
                piece = sent.strip()
                if not piece:
                    continue
                i = text.find(piece, pos)
                if i < 0:  # segmenter altered the text: fall back to the rest as one sentence
                    break
                spans.append((i, i + len(piece)))
                pos = i + len(piece)
            if pos < len(text.rstrip()):
                spans.append((pos, len(text)))
            return spans

        return split_sx
    if name == "kiwi":
        from kiwipiepy import Kiwi

        kiwi = Kiwi(num_workers=1)
        return lambda text: [(s.start, s.end) for s in kiwi.split_into_sents(text)]
    raise ValueError(f"unknown sentence splitter {name!r}; expected 'sentencex' or 'kiwi'")


def load_backend_tokenizer(name_or_path: str) -> Any:
    """Load the teacher's fast tokenizer (a Rust ``tokenizers.Tokenizer``) from a folder or hub id.

    ``tokenizer.json`` is read with the ``tokenizers`` library alone, so that chunk workers do not
    import transformers and torch (~0.7 GB of resident memory per process).

    Args:
        name_or_path: A local model folder holding ``tokenizer.json``, or a Hugging Face hub id.

    Returns:
        A ``tokenizers.Tokenizer``.
    """
    from tokenizers import Tokenizer

    local = Path(name_or_path) / "tokenizer.json"
    if local.is_file():
        return Tokenizer.from_file(str(local))
    return Tokenizer.from_pretrained(name_or_path)


def trim_heap() -> None:
    """Give freed heap memory back to the operating system (glibc's ``malloc_trim``; a no-op elsewhere).

    Why: reading a 250,000-piece ``tokenizer.json`` and building the Unigram trie leave freed
    allocations that glibc keeps mapped (~60 MB a worker, measured with session 6's SentencePiece set-up).
    It also fixes glibc's mmap threshold at 1 MB, so that later large blocks are
    returned when freed (no measurable change in chunk's peak on the shared articles).
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        # Blocks of 1 MB and more (a batch's arrays and strings) get their own mappings, returned when
        # freed; glibc's default raises that threshold as large blocks are freed, and the heap then keeps them.
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD


def passage_budget(tokenizer: Any, max_length: int, passage_prefix: str) -> int:
    """Tokens left for passage text once the prefix and special tokens are added.

    One more token is held back: a passage tokenized on its own can gain a word-start token at its
    first character that it did not have inside the document.

    Args:
        tokenizer: A ``tokenizers.Tokenizer``.
        max_length: The teacher's maximum sequence length.
        passage_prefix: E.g. ``"passage: "``.

    Returns:
        ``max_length - tokens(prefix) - special tokens - 1``.
    """
    specials = len(tokenizer.encode("", add_special_tokens=True).ids)
    prefix = len(tokenizer.encode(passage_prefix.strip(), add_special_tokens=False).ids)
    return max_length - specials - prefix - 1


class _Worker:
    """Per-process state: tokenizer and splitter are built once per worker."""

    packer: Packer | None = None
    tokenizer: Any = None
    words: WordTokenCounter | None = None

    @classmethod
    def init(cls, tokenizer_path: str, overlap: int, min_tokens: int, splitter: str,
             word_cache: int = 0, unigram_counts: bool = True) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        cls.tokenizer = load_backend_tokenizer(tokenizer_path)
        cls.packer = Packer(0, overlap, min_tokens, make_splitter(splitter))  # the budget comes with each batch
        use_words = word_cache > 0 and splits_on_whitespace(cls.tokenizer)
        fast = UnigramWordCounter.build(cls.tokenizer) if use_words and unigram_counts else None
        cls.words = WordTokenCounter(cls.tokenizer, word_cache, fast) if use_words else None
        trim_heap()

    @classmethod
    def budget(cls, max_length: int, passage_prefix: str) -> int:
        """:func:`passage_budget` with this worker's tokenizer (the parent loads none)."""
        return passage_budget(cls.tokenizer, max_length, passage_prefix)

    @classmethod
    def _pack(cls, packer: Packer, text: str, offsets: WordOffsets | None) -> list[Passage]:
        """Pack with cached word counts; retokenize the document when a hard cut needs exact offsets."""
        if offsets is not None:
            before = replace(packer.stats)
            try:
                return packer.pack(text, offsets)
            except NeedExactOffsets:
                packer.stats = before
                packer.stats.exact_retokenized += 1
        enc = cls.tokenizer.encode(text, add_special_tokens=False)
        return packer.pack(text, TokenOffsets(enc.offsets))

    @classmethod
    def run(cls, work: tuple[pa.RecordBatch, int]) -> tuple[pa.Table, ChunkStats]:
        """Chunk one batch of documents under a budget into a table of passages (Arrow both ways: cheap
        to pickle)."""
        batch, budget = work
        packer = cls.packer
        assert packer is not None, "worker not initialised"
        packer.budget = budget
        packer.stats = ChunkStats()
        words = cls.words
        hits, misses, fast = (words.hits, words.misses, words.fast_counted) if words else (0, 0, 0)
        texts = batch.column("text").to_pylist()
        sources, ids = batch.column("source").to_pylist(), batch.column("id").to_pylist()
        offsets = words.offsets_batch(texts) if words is not None else [None] * len(texts)
        # Columns, not row dicts: the document columns are gathered by Arrow (``take``) once per batch.
        doc_of: list[int] = []
        passage_ids: list[str] = []
        chunk_index: list[int] = []
        passage_texts: list[str] = []
        n_tokens: list[int] = []
        sentence_starts: list[list[int]] = []
        for d, (text, offs) in enumerate(zip(texts, offsets, strict=True)):
            passages = cls._pack(packer, text, offs)
            packer.stats.documents += 1
            for k, p in enumerate(passages):
                doc_of.append(d)
                passage_ids.append(f"{sources[d]}:{ids[d]}#{k}")
                chunk_index.append(k)
                passage_texts.append(p.text)
                n_tokens.append(p.tokens)
                sentence_starts.append(p.sentence_starts)
                packer.stats.tokens += p.tokens
        packer.stats.passages += len(doc_of)
        if words is not None:
            packer.stats.word_cache_hits += words.hits - hits
            packer.stats.word_cache_misses += words.misses - misses
            packer.stats.misses_counted_by_unigram += words.fast_counted - fast
        take = pa.array(doc_of, pa.int32())
        column = {name: batch.column(name).take(take) for name in ("source", "id", "title", "url")}
        table = pa.Table.from_arrays([
            pa.array(passage_ids, pa.string()), column["source"], column["id"],
            pa.array(chunk_index, pa.int32()), column["title"], column["url"], pa.array(passage_texts, pa.string()),
            pa.array(n_tokens, pa.int32()), pa.array(sentence_starts, pa.list_(pa.int32())),
        ], schema=PASSAGE_SCHEMA)
        return table, packer.stats


def _batches(documents: Path, batch_docs: int) -> Iterator[pa.RecordBatch]:
    # pre_buffer (pyarrow's default) keeps every row group it has read buffered until the file is closed:
    # +1 MB a batch, 1.3 GB after 1,200 batches of 512 documents. Streaming needs it off.
    pf = pq.ParquetFile(documents, pre_buffer=False)
    yield from pf.iter_batches(batch_size=batch_docs, columns=["source", "id", "title", "url", "text"])


def chunk_documents(documents: Path, out: Path, report_path: Path, tokenizer_path: str, budget: int | None,
                    overlap: int, min_tokens: int, splitter: str = "sentencex", workers: int = 0,
                    batch_docs: int = 512, progress: Callable[[int], None] | None = None,
                    word_cache: int = 1_000_000, unigram_counts: bool = True, max_length: int = 512,
                    passage_prefix: str = "passage: ") -> ChunkStats:
    """Chunk ``documents.parquet`` into ``passages.parquet``.

    Work is spread over ``workers`` processes; results are written in input order, so the output is
    deterministic whatever the worker count.

    Args:
        documents: Input Parquet from ``ingest``.
        out: Output Parquet of passages.
        report_path: Output JSON with the counters and settings.
        tokenizer_path: Teacher model folder or hub id (its tokenizer measures the budget).
        budget: Maximum tokens of passage text; ``None``: what a passage of the teacher's ``max_length``
            leaves for the text after ``passage_prefix`` (:func:`passage_budget`), measured by a worker.
        overlap: Sentences of overlap between consecutive passages of a document.
        min_tokens: Least free room worth filling sentence by sentence (see :class:`Packer`).
        splitter: Sentence splitter name (:func:`make_splitter`).
        workers: Processes; 0 means ``os.cpu_count()``.
        batch_docs: Documents per work item.
        progress: Optional callback with the number of documents done.
        word_cache: Words whose token counts each worker caches (:class:`WordTokenCounter`); 0 tokenizes
            every document whole.
        unigram_counts: Count cache misses of plain words with :class:`UnigramWordCounter` when the
            tokenizer allows it (the same counts, faster).
        max_length: The teacher's maximum sequence length (for a ``None`` budget).
        passage_prefix: The teacher's passage prefix (for a ``None`` budget).

    Returns:
        The accumulated counters.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    n_workers = workers or os.cpu_count() or 1
    t0 = time.perf_counter()
    total = ChunkStats()
    init_args = (tokenizer_path, overlap, min_tokens, splitter, word_cache, unigram_counts)

    with pq.ParquetWriter(out, PASSAGE_SCHEMA, compression="zstd") as writer:
        if n_workers == 1:
            _Worker.init(*init_args)
            used = budget if budget is not None else _Worker.budget(max_length, passage_prefix)
            results: Iterator[tuple[pa.Table, ChunkStats]] = map(
                _Worker.run, ((rb, used) for rb in _batches(documents, batch_docs)))
            _drain(results, writer, total, progress)
        else:
            ctx = get_context("spawn")  # fork after tokenizers/Kiwi threads start can deadlock
            with ctx.Pool(n_workers, initializer=_Worker.init, initargs=init_args) as pool:
                # A worker measures the budget: loading a tokenizer here (~0.8 s, ~300 MB) would compete
                # with the workers' start-up for the cores.
                used = budget if budget is not None else pool.apply(_Worker.budget, (max_length, passage_prefix))
                results = (out for _, out in bounded_imap(pool, _Worker.run, _batches(documents, batch_docs),
                                                          2 * n_workers, payload=lambda rb: (rb, used)))
                _drain(results, writer, total, progress)
    report = {**asdict(total), "budget": used, "splitter": splitter, "overlap_sentences": overlap,
              "min_tokens": min_tokens, "word_cache": word_cache, "unigram_counts": unigram_counts,
              "tokenizer": tokenizer_path, "workers": n_workers, "seconds": round(time.perf_counter() - t0, 3)}
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return total


def _drain(results: Iterator[tuple[pa.Table, ChunkStats]], writer: pq.ParquetWriter, total: ChunkStats,
           progress: Callable[[int], None] | None) -> None:
    for table, stats in results:
        if table.num_rows:
            writer.write_table(table)
        total.add(stats)
        if progress is not None:
            progress(total.documents)
