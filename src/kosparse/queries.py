"""Queries: (query, positive passage) pairs from titles, lead sentences and, optionally, an LLM.

Three kinds of query are made from ``passages.parquet``, in this order within each document:

* ``title`` — the document's title; the positive is the document's first passage (``chunk_index`` 0).
* ``first_sentence`` — the document's first sentence (a summary of it, in Wikipedia style). The positive
  is the first passage *with that sentence removed* (``positive_text``), so the pair is not a copy. Only
  the first paragraph is ever handed to the (slow) Kiwi sentence splitter, and only a window of it just
  longer than the longest query allowed; a boundary that ``chunk`` already found is reused as is.
* ``llm`` — search questions written by an LLM for a seeded sample of passages, through any
  OpenAI-compatible chat-completions endpoint or a local ``transformers`` model (:mod:`kosparse.llm`).
  Answers are cached per request in a JSONL file, so a rerun never asks twice.

Every candidate is normalised (NFC, whitespace collapsed) and checked for length; duplicates are dropped
by a key (NFC, casefold, whitespace and punctuation removed): exact duplicates anywhere in the output, and
near duplicates (character n-gram Jaccard) among the queries of the same positive document. Every drop is
counted by kind and reason in the report. Query ids are ``{kind}:{passage_id}`` (``llm:{passage_id}:{i}``
for the ``i``-th question of a passage), and rows follow the passages' order, so the output is
deterministic.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kosparse.config import require
from kosparse.llm import (
    AnswerCache,
    Generator,
    LLMConfig,
    LLMError,
    Messages,
    build_generator,
    build_messages,
    cache_key,
    parse_questions,
)

QUERY_SCHEMA = pa.schema([
    ("query_id", pa.string()),
    ("text", pa.string()),
    ("kind", pa.string()),
    ("positive_id", pa.string()),
    ("doc_id", pa.string()),
    ("source", pa.string()),
    ("positive_text", pa.string()),
])
"""``positive_text`` is null unless the positive must be trained on a text other than the passage's."""

KINDS = ("title", "first_sentence", "llm")

Span = tuple[int, int]
SplitFn = Callable[[Sequence[str]], list[list[Span]]]

__all__ = ["KINDS", "QUERY_SCHEMA", "DedupeConfig", "Deduper", "LLMConfig", "LLMError", "QueriesConfig",
           "QueriesStats", "clean_text", "dedupe_key", "generate_llm_answers", "make_queries",
           "select_llm_passages"]


@dataclass
class DedupeConfig:
    """``queries.dedupe``: which duplicate queries are dropped.

    Attributes:
        exact: Drop a query whose key (NFC, casefold, no whitespace or punctuation) was already kept
            anywhere in the output.
        jaccard: Drop a query whose character n-gram Jaccard similarity with a query already kept for the
            same document reaches this value; ``None`` turns it off.
        ngram: Character n-gram length for ``jaccard`` (on the key).
    """

    exact: bool = True
    jaccard: float | None = 0.8
    ngram: int = 3

    def __post_init__(self) -> None:
        require(self.jaccard is None or 0.0 < self.jaccard <= 1.0, "queries.dedupe.jaccard",
                 "must be in (0, 1] or null")
        require(self.ngram >= 1, "queries.dedupe.ngram", "must be >= 1")


@dataclass
class QueriesConfig:
    """The ``queries`` section: which queries to make and which to keep.

    Attributes:
        title: Make a ``title`` query per document.
        first_sentence: Make a ``first_sentence`` query per document.
        llm: LLM-written questions.
        min_query_chars: Queries shorter than this (after normalisation) are dropped (``too_short``).
        max_query_chars: Queries longer than this are dropped (``too_long``).
        min_sentence_chars: First sentences shorter than this (headings, fragments) are dropped.
        min_positive_chars: A first sentence is dropped when the rest of its passage is shorter.
        dedupe: Duplicate handling.
        seed: Seeds the LLM passage sample and the generation.
        batch_docs: Documents per processing batch.
        splitter: Sentence splitter for first paragraphs: ``sentencex`` (default, as in ``chunk``) or
            ``kiwi`` (kiwipiepy; ~300x slower, see README).
        splitter_workers: Threads of the Kiwi sentence splitter.
    """

    title: bool = True
    first_sentence: bool = True
    llm: LLMConfig = field(default_factory=LLMConfig)
    min_query_chars: int = 2
    max_query_chars: int = 200
    min_sentence_chars: int = 10
    min_positive_chars: int = 64
    dedupe: DedupeConfig = field(default_factory=DedupeConfig)
    seed: int = 0
    batch_docs: int = 512
    splitter: str = "sentencex"
    splitter_workers: int = 1

    def __post_init__(self) -> None:
        require(1 <= self.min_query_chars <= self.max_query_chars, "queries.min_query_chars/max_query_chars",
                 "need 1 <= min <= max")
        require(self.min_sentence_chars >= 0 and self.min_positive_chars >= 0,
                 "queries.min_sentence_chars/min_positive_chars", "must be >= 0")
        require(self.batch_docs > 0 and self.splitter_workers > 0, "queries.batch_docs/splitter_workers",
                 "must be positive")
        require(self.splitter in {"sentencex", "kiwi"}, "queries.splitter",
                 f"unknown splitter {self.splitter!r}; expected 'sentencex' or 'kiwi'")


@dataclass
class QueriesStats:
    """Counters for the queries report.

    Attributes:
        passages: Passages read.
        documents: Documents read.
        candidates: Candidate queries by kind (before any check).
        kept: Queries written, by kind.
        dropped: Dropped candidates by kind, then reason.
        llm: Counters of the LLM step (passages selected, cache hits, requests, retries, failures,
            empty answers, tokens).
    """

    passages: int = 0
    documents: int = 0
    candidates: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    dropped: dict[str, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in KINDS})
    llm: Counter[str] = field(default_factory=Counter)

    def drop(self, kind: str, reason: str, n: int = 1) -> None:
        """Count ``n`` dropped candidates of ``kind`` for ``reason``."""
        self.dropped[kind][reason] += n

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (every kind present, reasons sorted)."""
        return {
            "passages": self.passages,
            "documents": self.documents,
            "queries": sum(self.kept.values()),
            "candidates": {k: self.candidates[k] for k in KINDS},
            "kept": {k: self.kept[k] for k in KINDS},
            "dropped": {k: dict(sorted(self.dropped[k].items())) for k in KINDS},
            "llm": dict(sorted(self.llm.items())),
        }


# --- text helpers --------------------------------------------------------------------------------

_WS = re.compile(r"\s+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def clean_text(text: str) -> str:
    """NFC-normalise ``text`` and collapse its whitespace (what a query is written as).

    Args:
        text: Raw query text.

    Returns:
        The cleaned text.
    """
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


def dedupe_key(text: str) -> str:
    """The key duplicates are found by: NFC, casefold, whitespace and punctuation removed.

    Args:
        text: A query.

    Returns:
        The key (may be empty for a query of punctuation only).
    """
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    return "".join(ch for ch in folded if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def char_ngrams(key: str, n: int) -> frozenset[str]:
    """Character n-grams of ``key``; a key shorter than ``n`` is its own single gram.

    Args:
        key: A dedupe key.
        n: Gram length.

    Returns:
        The set of grams.
    """
    if len(key) <= n:
        return frozenset([key])
    return frozenset(key[i: i + n] for i in range(len(key) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


# --- duplicate filter ----------------------------------------------------------------------------

class Deduper:
    """Drops exact duplicates across the output and near duplicates within one document.

    Args:
        cfg: Dedupe settings.
    """

    def __init__(self, cfg: DedupeConfig) -> None:
        self.cfg = cfg
        self.seen: set[str] = set()
        self.doc: list[frozenset[str]] = []

    def new_document(self) -> None:
        """Start the next document (near duplicates are only sought within one)."""
        self.doc = []

    def check(self, text: str) -> str | None:
        """Accept ``text`` (remembering it) or say why it is a duplicate.

        Args:
            text: A cleaned query.

        Returns:
            ``None`` when kept, else ``"duplicate"`` or ``"near_duplicate"``.
        """
        key = dedupe_key(text)
        if self.cfg.exact and key in self.seen:
            return "duplicate"
        grams = char_ngrams(key, self.cfg.ngram)
        if self.cfg.jaccard is not None and any(jaccard(grams, g) >= self.cfg.jaccard for g in self.doc):
            return "near_duplicate"
        self.seen.add(key)
        self.doc.append(grams)
        return None


# --- LLM questions -------------------------------------------------------------------------------

_LLM_COUNTERS = ("passages_selected", "cache_hits", "requests", "retries", "failed_requests",
                 "truncated_answers", "prompt_tokens", "completion_tokens", "cache_bad_lines")

def _rank(seed: int, passage_id: str) -> int:
    digest = hashlib.blake2b(passage_id.encode("utf-8"), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big")


def select_llm_passages(passages: Path, cfg: LLMConfig, seed: int) -> set[str]:
    """Pick the passages that get LLM questions.

    Eligible passages (``min_passage_chars`` or longer) are ranked by a keyed hash of ``seed`` and the
    passage id; the first ``round(fraction * eligible)`` (at most ``max_passages``) are taken.

    Args:
        passages: ``passages.parquet``.
        cfg: LLM settings.
        seed: Sample seed.

    Returns:
        The selected passage ids.
    """
    ranked: list[tuple[int, str]] = []
    for rb in pq.ParquetFile(passages, pre_buffer=False).iter_batches(columns=["passage_id", "text"], batch_size=8192):
        ok = pc.greater_equal(pc.utf8_length(rb.column("text")), cfg.min_passage_chars)
        for pid in pc.filter(rb.column("passage_id"), ok).to_pylist():
            ranked.append((_rank(seed, pid), pid))
    k = int(math.floor(cfg.fraction * len(ranked) + 0.5))
    if cfg.max_passages is not None:
        k = min(k, cfg.max_passages)
    ranked.sort()
    return {pid for _, pid in ranked[:k]}


def generate_llm_answers(passages: Path, cfg: LLMConfig, seed: int, cache_path: Path, stats: QueriesStats,
                         generator: Generator | None = None,
                         progress: Callable[[int, int], None] | None = None) -> dict[str, str]:
    """Get an answer for every selected passage, from the cache or the model.

    Args:
        passages: ``passages.parquet``.
        cfg: LLM settings.
        seed: Sample and generation seed.
        cache_path: The JSONL answer cache.
        stats: Counters updated under ``stats.llm``.
        generator: The model (built from ``cfg`` when ``None`` and a request is needed).
        progress: Optional callback ``(done, to_do)`` after each batch of requests.

    Returns:
        Answer text by passage id (selected passages whose request failed are missing).

    Raises:
        LLMError: On a fatal endpoint answer, or when failed requests exceed ``max_error_rate``.
    """
    for name in _LLM_COUNTERS:
        stats.llm[name] += 0  # every counter in the report, zeros included
    cache = AnswerCache(cache_path)
    stats.llm["cache_bad_lines"] += cache.bad_lines
    selected = select_llm_passages(passages, cfg, seed)
    stats.llm["passages_selected"] = len(selected)
    answers: dict[str, str] = {}
    todo: list[tuple[str, str, Messages]] = []  # (passage_id, key, messages) in input order
    value_set = pa.array(sorted(selected), pa.string())
    pf = pq.ParquetFile(passages, pre_buffer=False)  # pre_buffer keeps every row group read in memory
    for rb in pf.iter_batches(columns=["passage_id", "title", "text"], batch_size=8192):
        mask = pc.is_in(rb.column("passage_id"), value_set=value_set)
        for row in pa.Table.from_batches([rb]).filter(mask).to_pylist():
            messages = build_messages(cfg, row["title"] or "", row["text"])
            key = cache_key(cfg, messages, seed)
            cached = cache.get(key)
            if cached is not None:
                answers[row["passage_id"]] = cached
                stats.llm["cache_hits"] += 1
            else:
                todo.append((row["passage_id"], key, messages))
    if not todo:
        return answers
    gen = generator or build_generator(cfg, seed)
    retries_before = gen.retries
    failed = 0
    last_error = ""
    try:
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start: start + cfg.batch_size]
            results = gen.generate([m for _, _, m in batch])
            records = []
            for (pid, key, _), res in zip(batch, results, strict=True):
                stats.llm["requests"] += 1
                if isinstance(res, Exception):
                    failed += 1
                    last_error = f"{type(res).__name__}: {res}"
                    continue
                answers[pid] = res.text
                stats.llm["prompt_tokens"] += res.prompt_tokens
                stats.llm["completion_tokens"] += res.completion_tokens
                stats.llm["truncated_answers"] += res.truncated
                records.append({"key": key, "answer": res.text, "passage_id": pid, "provider": cfg.provider,
                                "model": cfg.model})
            cache.add(records)
            if progress is not None:
                progress(start + len(batch), len(todo))
    finally:
        stats.llm["retries"] += gen.retries - retries_before
        stats.llm["failed_requests"] += failed
    if failed > cfg.max_error_rate * len(todo):
        raise LLMError(f"{failed} of {len(todo)} LLM requests failed (max_error_rate {cfg.max_error_rate}); "
                       f"the {len(todo) - failed} answers received are cached. Last error: {last_error}")
    return answers


# --- first sentences -----------------------------------------------------------------------------

_SPLIT_MARGIN = 64


def first_splitter(name: str, num_workers: int = 1) -> SplitFn:
    """Batch sentence splitter for first paragraphs.

    Args:
        name: ``sentencex`` (the chunk stage's splitter) or ``kiwi``.
        num_workers: Kiwi's thread count.

    Returns:
        A function mapping texts to the character spans of their sentences.
    """
    if name == "kiwi":
        return kiwi_first_splitter(num_workers)
    from kosparse.chunk import make_splitter

    one = make_splitter(name)
    return lambda texts: [one(t) for t in texts]


def kiwi_first_splitter(num_workers: int = 1) -> SplitFn:
    """Kiwi (``Kiwi.split_into_sents``) sentence spans for a batch of texts.

    Args:
        num_workers: Kiwi's thread count (a batch is split across them).

    Returns:
        A function mapping texts to the character spans of their sentences.
    """
    from kiwipiepy import Kiwi

    kiwi = Kiwi(num_workers=num_workers)

    def split(texts: Sequence[str]) -> list[list[Span]]:
        if not texts:
            return []
        return [[(s.start, s.end) for s in sents] for sents in kiwi.split_into_sents(list(texts))]

    return split


@dataclass
class _Lead:
    """Where a document's first sentence ends in its first passage, or why there is none."""

    end: int = 0
    reason: str | None = None
    window: str | None = None  # the start of the first paragraph, still to be split
    cut: bool = False  # the window stops inside the first paragraph


def _leads(rows: Sequence[dict[str, Any]], window_chars: int, split: Callable[[], SplitFn]) -> list[_Lead]:
    """Find the end of the first sentence of each first passage.

    A sentence boundary that ``chunk`` stored inside the first paragraph is used as is; otherwise Kiwi
    splits the first ``window_chars`` characters of the first paragraph (all texts of the batch at once).
    A first sentence that runs to the end of a cut window is longer than any query kept (``too_long``).
    """
    leads: list[_Lead] = []
    for row in rows:
        text: str = row["text"]
        nl = text.find("\n")
        para_end = nl if nl >= 0 else len(text)
        known = next((s for s in row["sentence_starts"] or () if 0 < s < para_end), None)
        if known is not None:
            leads.append(_Lead(end=known))
        else:
            leads.append(_Lead(window=text[: min(para_end, window_chars)], cut=para_end > window_chars))
    pending = [lead for lead in leads if lead.window is not None]
    if not pending:
        return leads
    for lead, spans in zip(pending, split()([lead.window or "" for lead in pending]), strict=True):
        window, lead.window = lead.window or "", None
        if not spans or not window[spans[0][0]: spans[0][1]].strip():
            lead.reason = "no_sentence"
        elif lead.cut and spans[0][1] >= len(window.rstrip()):
            lead.reason = "too_long"
        else:
            lead.end = spans[0][1]
    return leads


# --- main ----------------------------------------------------------------------------------------

_COLUMNS = ["passage_id", "source", "doc_id", "chunk_index", "title", "text", "sentence_starts"]


def _documents(passages: Path, batch_rows: int = 4096) -> Iterator[list[dict[str, Any]]]:
    """Yield each document's passages (they are contiguous in ``passages.parquet``)."""
    seen: set[tuple[str, str]] = set()
    current: list[dict[str, Any]] = []
    key: tuple[str, str] | None = None
    for rb in pq.ParquetFile(passages, pre_buffer=False).iter_batches(columns=_COLUMNS, batch_size=batch_rows):
        for row in rb.to_pylist():
            k = (row["source"], row["doc_id"])
            if k != key:
                if current:
                    yield current
                if k in seen:
                    raise ValueError(f"{passages}: passages of document {k[0]}:{k[1]} are not contiguous")
                seen.add(k)
                key, current = k, []
            current.append(row)
    if current:
        yield current


def _batched(items: Iterator[list[dict[str, Any]]], n: int) -> Iterator[list[list[dict[str, Any]]]]:
    batch: list[list[dict[str, Any]]] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class _Candidate:
    kind: str
    query_id: str
    text: str
    positive: dict[str, Any]
    positive_text: str | None = None


class _Builder:
    """Turns batches of documents into query rows, applying every check and counting every drop."""

    def __init__(self, cfg: QueriesConfig, answers: dict[str, str], split: Callable[[], SplitFn],
                 stats: QueriesStats) -> None:
        self.cfg = cfg
        self.answers = answers
        self.split = split
        self.stats = stats
        self.dedupe = Deduper(cfg.dedupe)

    def _length_reason(self, text: str, min_chars: int) -> str | None:
        if len(text) < max(min_chars, self.cfg.min_query_chars):
            return "too_short"
        if len(text) > self.cfg.max_query_chars:
            return "too_long"
        return None

    def rows(self, docs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        cfg = self.cfg
        firsts = [doc[0] if doc[0]["chunk_index"] == 0 else None for doc in docs]
        leads: dict[int, _Lead] = {}
        if cfg.first_sentence:
            idx = [i for i, f in enumerate(firsts) if f is not None]
            window = cfg.max_query_chars + _SPLIT_MARGIN
            rows = [f for f in firsts if f is not None]
            leads = dict(zip(idx, _leads(rows, window, self.split), strict=True))
        out: list[dict[str, Any]] = []
        for i, doc in enumerate(docs):
            self.stats.documents += 1
            self.stats.passages += len(doc)
            self.dedupe.new_document()
            for cand in self._candidates(doc, firsts[i], leads.get(i)):
                reason = self.dedupe.check(cand.text)
                if reason is not None:
                    self.stats.drop(cand.kind, reason)
                    continue
                self.stats.kept[cand.kind] += 1
                p = cand.positive
                out.append({"query_id": cand.query_id, "text": cand.text, "kind": cand.kind,
                            "positive_id": p["passage_id"], "doc_id": p["doc_id"], "source": p["source"],
                            "positive_text": cand.positive_text})
        return out

    def _candidates(self, doc: list[dict[str, Any]], first: dict[str, Any] | None,
                    lead: _Lead | None) -> Iterator[_Candidate]:
        cfg, stats = self.cfg, self.stats
        if cfg.title:
            stats.candidates["title"] += 1
            title = clean_text(doc[0]["title"] or "")
            reason = ("no_first_passage" if first is None else
                      "empty_title" if not title else self._length_reason(title, 0))
            if reason:
                stats.drop("title", reason)
            elif first is not None:
                yield _Candidate("title", f"title:{first['passage_id']}", title, first)
        if cfg.first_sentence:
            stats.candidates["first_sentence"] += 1
            cand = self._first_sentence(first, lead)
            if cand is not None:
                yield cand
        if cfg.llm.enabled:
            for row in doc:
                answer = self.answers.get(row["passage_id"])
                if answer is not None:
                    yield from self._llm(row, answer)

    def _first_sentence(self, first: dict[str, Any] | None, lead: _Lead | None) -> _Candidate | None:
        if first is None or lead is None:
            self.stats.drop("first_sentence", "no_first_passage")
            return None
        text: str = first["text"]
        sentence = clean_text(text[: lead.end])
        rest = text[lead.end:].strip()
        reason = lead.reason or self._length_reason(sentence, self.cfg.min_sentence_chars)
        if reason is None and len(rest) < self.cfg.min_positive_chars:
            reason = "remainder_too_short"
        if reason:
            self.stats.drop("first_sentence", reason)
            return None
        return _Candidate("first_sentence", f"first_sentence:{first['passage_id']}", sentence, first, rest)

    def _llm(self, row: dict[str, Any], answer: str) -> Iterator[_Candidate]:
        cfg, stats = self.cfg, self.stats
        if not answer.strip():
            stats.drop("llm", "empty_answer")
            return
        questions = parse_questions(answer)
        if not questions:
            stats.drop("llm", "no_questions")
            return
        passage_key = dedupe_key(row["text"])
        n = cfg.llm.questions_per_passage
        for i, raw in enumerate(questions):
            stats.candidates["llm"] += 1
            q = clean_text(raw)
            key = dedupe_key(q)
            reason = self._length_reason(q, 0)
            if i >= n:
                reason = "extra_question"
            elif reason is None and cfg.llm.require_hangul and not _HANGUL.search(q):
                reason = "no_hangul"
            elif reason is None and key and key in passage_key:
                reason = "copy_of_passage"
            if reason:
                stats.drop("llm", reason)
                continue
            yield _Candidate("llm", f"llm:{row['passage_id']}:{i}", q, row)


def make_queries(passages: Path, out: Path, report_path: Path, cfg: QueriesConfig, cache_path: Path,
                 generator: Generator | None = None, split: SplitFn | None = None,
                 progress: Callable[[str, int], None] | None = None) -> QueriesStats:
    """Make ``queries.parquet`` (and its report) from ``passages.parquet``.

    Args:
        passages: Input Parquet from ``chunk`` (``PASSAGE_SCHEMA``; a document's passages contiguous).
        out: Output Parquet (``QUERY_SCHEMA``).
        report_path: Output JSON: counts by kind, drops by kind and reason, LLM counters, settings.
        cfg: The ``queries`` section.
        cache_path: JSONL cache of LLM answers (created, even when the LLM is off, so that it can be
            a persistent DVC output).
        generator: The LLM (built from ``cfg.llm`` when ``None`` and needed).
        split: Sentence splitter (``cfg.splitter`` when ``None``; built only when a batch needs it).
        progress: Optional callback ``(step, count)``: ``("llm", requests done)`` and
            ``("documents", documents done)``.

    Returns:
        The counters written to the report.

    Raises:
        LLMError: When the LLM cannot be used or too many requests failed.
        ValueError: When a document's passages are not contiguous in ``passages``.
    """
    t0 = time.perf_counter()
    stats = QueriesStats()
    answers: dict[str, str] = {}
    if cfg.llm.enabled:
        answers = generate_llm_answers(
            passages, cfg.llm, cfg.seed, cache_path, stats, generator,
            None if progress is None else lambda done, _total: progress("llm", done))
    else:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.touch()
    splitter: list[SplitFn] = [split] if split is not None else []

    def get_split() -> SplitFn:
        if not splitter:
            splitter.append(first_splitter(cfg.splitter, cfg.splitter_workers))
        return splitter[0]

    builder = _Builder(cfg, answers, get_split, stats)
    out.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(out, QUERY_SCHEMA, compression="zstd") as writer:
        for docs in _batched(_documents(passages), cfg.batch_docs):
            rows = builder.rows(docs)
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=QUERY_SCHEMA))
            if progress is not None:
                progress("documents", stats.documents)
    settings = asdict(cfg)
    settings["llm"].pop("api_key", None)
    report = {**stats.to_dict(), "settings": settings, "seconds": round(time.perf_counter() - t0, 3)}
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
                           encoding="utf-8")
    return stats
