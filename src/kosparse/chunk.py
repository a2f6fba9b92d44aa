"""Chunk: sentence-aware passages under a token budget measured by the teacher's tokenizer.

Packing works on paragraphs first and splits a paragraph into sentences only where it has to — when
it overflows the current passage, or when its last sentences are needed as overlap. A document that
fits the budget becomes one passage without any sentence splitting. This keeps the (slow,
morphology-based) sentence splitter off most of the text while every passage still ends at a sentence
boundary. The packing itself is hand-written: no maintained library packs sentences under a
*tokenizer-measured* budget with sentence overlap (LangChain's splitters count characters or re-tokenize
per candidate).

Passage ids are ``{source}:{doc_id}#{k}`` with ``k`` counting from 0 within a document.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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
SplitFn = Callable[[Sequence[str]], list[list[Span]]]
CountFn = Callable[[Sequence[str]], list[int]]


@dataclass(slots=True)
class Unit:
    """A packable piece of a document: a whole paragraph, one sentence, or a hard cut of a long sentence."""

    text: str
    tokens: int
    paragraph: int
    is_paragraph: bool


@dataclass
class Passage:
    """One output passage (before ids are attached)."""

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
    merged_tails: int = 0
    tokens: int = 0

    def add(self, other: ChunkStats) -> None:
        """Accumulate another batch's counters."""
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


@dataclass
class Packer:
    """Packs one document's paragraphs into passages.

    Attributes:
        budget: Maximum tokens per passage text.
        overlap: Sentences carried from the end of one passage to the start of the next.
        min_tokens: A final passage below this is merged into the previous one when the result fits.
        split: Sentence splitter returning character spans per paragraph.
        count: Token counter (teacher tokenizer, no special tokens).
        hard_cut: Cuts a text longer than the budget into pieces that fit (token offsets).
    """

    budget: int
    overlap: int
    min_tokens: int
    split: SplitFn
    count: CountFn
    hard_cut: Callable[[str, int], list[str]]
    stats: ChunkStats = field(default_factory=ChunkStats)

    def _sentences(self, unit: Unit) -> list[Unit]:
        spans = self.split([unit.text])[0]
        texts = [unit.text[a:b].strip() for a, b in spans]
        texts = [t for t in texts if t] or [unit.text]
        self.stats.paragraphs_split += 1
        return [Unit(t, n, unit.paragraph, False) for t, n in zip(texts, self.count(texts), strict=True)]

    def _cut(self, unit: Unit) -> list[Unit]:
        # Re-tokenizing a cut piece can add a token at its edge: shrink the cut until every piece fits.
        limit = self.budget
        while True:
            pieces = self.hard_cut(unit.text, limit)
            counts = self.count(pieces)
            if max(counts, default=0) <= self.budget or limit <= 1:
                break
            limit = max(1, limit - max(1, limit // 16))
        self.stats.hard_cuts += 1
        return [Unit(t, min(n, self.budget), unit.paragraph, False) for t, n in zip(pieces, counts, strict=True)]

    def pack(self, paragraphs: list[str], paragraph_tokens: list[int]) -> list[Passage]:
        """Pack paragraphs (with their token counts) into passages.

        Args:
            paragraphs: The document's paragraphs, in order.
            paragraph_tokens: Token count of each paragraph.

        Returns:
            Passages in document order; each ends at a sentence or paragraph boundary unless a single
            sentence exceeds the budget (then it is cut at token boundaries).
        """
        queue = [Unit(p, n, i, True) for i, (p, n) in enumerate(zip(paragraphs, paragraph_tokens, strict=True))]
        queue.reverse()  # pop() from the end = next unit
        out: list[tuple[list[Unit], int]] = []  # (units, how many leading units are overlap carry)
        cur: list[Unit] = []
        n_carry = used = 0
        while queue:
            u = queue.pop()
            if u.tokens > self.budget:
                # A paragraph is split into sentences; a single sentence still too long is cut by tokens.
                queue.extend(reversed(self._sentences(u) if u.is_paragraph else self._cut(u)))
                continue
            if used + u.tokens <= self.budget:
                cur.append(u)
                used += u.tokens
                continue
            if u.is_paragraph and self.budget - used >= self.min_tokens:
                queue.extend(reversed(self._sentences(u)))  # fill the rest of this passage sentence by sentence
                continue
            out.append((cur, n_carry))
            cur = self._overlap(cur, u.tokens)
            n_carry, used = len(cur), sum(c.tokens for c in cur)
            queue.append(u)
        if len(cur) > n_carry:
            out.append((cur, n_carry))
        return [self._render(units) for units in self._merge_tail(out)]

    def _overlap(self, units: list[Unit], next_tokens: int) -> list[Unit]:
        """The last ``overlap`` sentences of ``units`` that still leave room for ``next_tokens``.

        A trailing whole paragraph is split into sentences first (in place, so the passage it ends
        and the overlap that repeats it agree).
        """
        if not self.overlap or not units:
            return []
        if units[-1].is_paragraph:
            units[-1:] = self._sentences(units[-1])
        carry: list[Unit] = []
        room = self.budget - next_tokens
        for s in reversed(units[-self.overlap:]):
            if s.tokens > room:
                break
            carry.insert(0, s)
            room -= s.tokens
        return carry

    def _merge_tail(self, out: list[tuple[list[Unit], int]]) -> list[list[Unit]]:
        """Merge a final passage shorter than ``min_tokens`` into the previous one when it fits."""
        chunks = [units for units, _ in out]
        if len(out) < 2:
            return chunks
        (prev, _), (tail, n_carry) = out[-2], out[-1]
        rest = tail[n_carry:]
        tail_tokens = sum(u.tokens for u in rest)
        if tail_tokens < self.min_tokens and sum(u.tokens for u in prev) + tail_tokens <= self.budget:
            self.stats.merged_tails += 1
            return chunks[:-2] + [prev + rest]
        return chunks

    @staticmethod
    def _render(units: list[Unit]) -> Passage:
        parts: list[str] = []
        starts: list[int] = []
        pos = 0
        prev_para = None
        for u in units:
            if parts:
                sep = " " if u.paragraph == prev_para else "\n"
                parts.append(sep)
                pos += 1
            starts.append(pos)
            parts.append(u.text)
            pos += len(u.text)
            prev_para = u.paragraph
        return Passage("".join(parts), sum(u.tokens for u in units), starts)


# --- splitters and tokenizers (per worker process) ---------------------------------------------

def kiwi_splitter(num_workers: int = 1) -> SplitFn:
    """Sentence splitter backed by kiwipiepy (``Kiwi.split_into_sents``).

    Args:
        num_workers: Kiwi's own thread count (1 inside multiprocessing workers).

    Returns:
        A function mapping paragraphs to the character spans of their sentences.
    """
    from kiwipiepy import Kiwi

    kiwi = Kiwi(num_workers=num_workers)

    def split(texts: Sequence[str]) -> list[list[Span]]:
        return [[(s.start, s.end) for s in kiwi.split_into_sents(t)] for t in texts]

    return split


def load_backend_tokenizer(name_or_path: str) -> Any:
    """Load the teacher's fast tokenizer (the Rust ``tokenizers.Tokenizer``) from a folder or hub id.

    Args:
        name_or_path: A local model folder or a Hugging Face hub id.

    Returns:
        A ``tokenizers.Tokenizer``.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path)
    return tok.backend_tokenizer


def passage_budget(tokenizer: Any, max_length: int, passage_prefix: str) -> int:
    """Tokens left for passage text once the prefix and special tokens are added.

    Args:
        tokenizer: A ``tokenizers.Tokenizer``.
        max_length: The teacher's maximum sequence length.
        passage_prefix: E.g. ``"passage: "``.

    Returns:
        ``max_length - tokens(prefix) - special tokens``.
    """
    specials = len(tokenizer.encode("", add_special_tokens=True).ids)
    prefix = len(tokenizer.encode(passage_prefix.strip(), add_special_tokens=False).ids)
    return max_length - specials - prefix


class _Worker:
    """Per-process state: tokenizer and splitter are built once per worker."""

    packer: Packer | None = None

    @classmethod
    def init(cls, tokenizer_path: str, budget: int, overlap: int, min_tokens: int) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        tok = load_backend_tokenizer(tokenizer_path)

        def count(texts: Sequence[str]) -> list[int]:
            return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

        def hard_cut(text: str, limit: int) -> list[str]:
            offsets = tok.encode(text, add_special_tokens=False).offsets
            pieces = [text[offsets[i][0]: offsets[min(i + limit, len(offsets)) - 1][1]].strip()
                      for i in range(0, len(offsets), limit)]
            return [p for p in pieces if p]

        cls.packer = Packer(budget, overlap, min_tokens, kiwi_splitter(1), count, hard_cut)

    @classmethod
    def run(cls, batch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], ChunkStats]:
        packer = cls.packer
        assert packer is not None, "worker not initialised"
        packer.stats = ChunkStats()
        paragraphs = [d["text"].split("\n") for d in batch]
        flat = [p for ps in paragraphs for p in ps]
        counts = packer.count(flat)
        rows: list[dict[str, Any]] = []
        pos = 0
        for doc, paras in zip(batch, paragraphs, strict=True):
            n = counts[pos: pos + len(paras)]
            pos += len(paras)
            if sum(n) <= packer.budget:
                starts, off = [], 0
                for p in paras:
                    starts.append(off)
                    off += len(p) + 1
                passages = [Passage(doc["text"], sum(n), starts)]
                packer.stats.single_passage_documents += 1
            else:
                passages = packer.pack(paras, n)
            packer.stats.documents += 1
            for k, p in enumerate(passages):
                rows.append({
                    "passage_id": f"{doc['source']}:{doc['id']}#{k}", "source": doc["source"], "doc_id": doc["id"],
                    "chunk_index": k, "title": doc["title"], "url": doc["url"], "text": p.text,
                    "n_tokens": p.tokens, "sentence_starts": p.sentence_starts,
                })
                packer.stats.passages += 1
                packer.stats.tokens += p.tokens
        return rows, packer.stats


def _batches(documents: Path, batch_docs: int) -> Iterator[list[dict[str, Any]]]:
    pf = pq.ParquetFile(documents)
    for rb in pf.iter_batches(batch_size=batch_docs, columns=["source", "id", "title", "url", "text"]):
        yield rb.to_pylist()


def chunk_documents(documents: Path, out: Path, report_path: Path, tokenizer_path: str, budget: int,
                    overlap: int, min_tokens: int, workers: int = 0, batch_docs: int = 512,
                    progress: Callable[[int], None] | None = None) -> ChunkStats:
    """Chunk ``documents.parquet`` into ``passages.parquet``.

    Work is spread over ``workers`` processes; results are written in input order, so the output is
    deterministic whatever the worker count.

    Args:
        documents: Input Parquet from ``ingest``.
        out: Output Parquet of passages.
        report_path: Output JSON with the counters and settings.
        tokenizer_path: Teacher model folder or hub id (its tokenizer measures the budget).
        budget: Maximum tokens of passage text.
        overlap: Sentences of overlap between consecutive passages of a document.
        min_tokens: Tail-merge threshold.
        workers: Processes; 0 means ``os.cpu_count()``.
        batch_docs: Documents per work item.
        progress: Optional callback with the number of documents done.

    Returns:
        The accumulated counters.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    n_workers = workers or os.cpu_count() or 1
    t0 = time.perf_counter()
    total = ChunkStats()
    init_args = (tokenizer_path, budget, overlap, min_tokens)
    with pq.ParquetWriter(out, PASSAGE_SCHEMA, compression="zstd") as writer:
        if n_workers == 1:
            _Worker.init(*init_args)
            results: Iterator[tuple[list[dict[str, Any]], ChunkStats]] = map(
                _Worker.run, _batches(documents, batch_docs))
            _drain(results, writer, total, progress)
        else:
            ctx = get_context("spawn")  # fork after tokenizers/Kiwi threads start can deadlock
            with ctx.Pool(n_workers, initializer=_Worker.init, initargs=init_args) as pool:
                _drain(pool.imap(_Worker.run, _batches(documents, batch_docs)), writer, total, progress)
    report = {**asdict(total), "budget": budget, "overlap_sentences": overlap, "min_tokens": min_tokens,
              "tokenizer": tokenizer_path, "workers": n_workers, "seconds": round(time.perf_counter() - t0, 3)}
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return total


def _drain(results: Iterator[tuple[list[dict[str, Any]], ChunkStats]], writer: pq.ParquetWriter,
           total: ChunkStats, progress: Callable[[int], None] | None) -> None:
    for rows, stats in results:
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=PASSAGE_SCHEMA))
        total.add(stats)
        if progress is not None:
            progress(total.documents)
