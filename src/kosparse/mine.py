"""Mine: hard, related and easy negatives for each query, scored by the teacher into disjoint bands.

For every query the row holds ``docs_per_query`` passages:

* the **positive** (score ``positive_score``, 10.0);
* **hard negatives** from the query's exact top-``top_k`` by inner product (the positive removed), after
  dropping every passage of the positive's source document, exact duplicates of the positive (hash of the
  normalised text), near duplicates (cosine to the positive ``>= duplicate_cosine``), repeated texts, and
  likely false negatives with sentence-transformers' relative margin (``sim > pos - |pos| * margin``);
* **related** passages drawn (seeded) from the positive's k-means cluster, outside its document;
* **easy** negatives drawn (seeded) from the whole corpus outside the top-k and outside the cluster.

Scores come from ONE monotone map of a similarity into ``[0, 1]`` (linear over ``sim_range``, clipped),
scaled into each band's interval; bands are disjoint, so every row satisfies
``positive > hard > related > easy`` and, within a band, a higher similarity gives a higher score. Hard
and easy negatives are scored by their teacher similarity to the query; related passages by their
cosine to the cluster's centroid (``related_score: centroid``, i.e. their distance to it) or by the
teacher similarity (``related_score: teacher``).

Everything is vectorised over batches of queries; random draws use a counter-based hash of
``(seed, query_id, draw)``, so a query's row does not depend on the batch it lands in or on the other
queries. The exact search is a dense matrix product with top-k (PyTorch, CUDA when available); a
prebuilt FAISS index can be used instead (``search: index``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kosparse.config import ConfigError

BANDS = ("positive", "hard", "related", "easy")
"""Band names, in score order; ``bands`` columns hold these names."""

WINDOW_FILTERS = ("missing", "same_document", "duplicate_text", "near_duplicate", "relative_margin",
                  "repeated_text")
"""Reasons a top-k candidate is not a hard negative, in the order they are attributed."""

DROP_REASONS = ("query_not_embedded", "positive_not_embedded", "too_few_hard_negatives", "too_few_candidates")
"""Reasons a query gets no row."""

MINED_SCHEMA = pa.schema([
    ("query_id", pa.string()),
    ("doc_ids", pa.list_(pa.string())),
    ("scores", pa.list_(pa.float64())),
    ("bands", pa.list_(pa.string())),
    ("teacher_sims", pa.list_(pa.float32())),
])

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _check_band(name: str, band: list[float]) -> None:
    if len(band) != 2 or not band[0] <= band[1]:
        raise ConfigError(f"mine.{name}: expected [low, high] with low <= high, got {band}")


@dataclass
class MineConfig:
    """The ``mine`` section.

    Attributes:
        top_k: Size of the hard-negative window: the top-k passages by inner product, positive excluded.
        docs_per_query: Passages per row, positive included (1 + hard + related + easy).
        hard_min: A query with fewer hard negatives left after the filters is dropped.
        hard_max: Most hard negatives per row; hard negatives fill the row when related or easy ones
            run short.
        related: Related passages (same k-means cluster as the positive) per row.
        easy: Easy negatives (outside the top-k and the cluster) per row.
        relative_margin: Skip candidates with ``sim > pos_sim - |pos_sim| * margin`` as likely false
            negatives (sentence-transformers' ``relative_margin``); ``None`` disables.
        duplicate_cosine: Skip candidates whose cosine to the positive passage is at least this;
            ``None`` disables.
        exclude_same_document: Skip every passage of the positive's source document.
        dedupe_text: Skip candidates whose normalised text equals the positive's (or an earlier
            candidate's).
        positive_score: Score of the positive.
        hard_band: ``[low, high]`` score interval of hard negatives.
        related_band: ``[low, high]`` score interval of related passages.
        easy_band: ``[low, high]`` score interval of easy negatives.
        sim_range: ``[low, high]`` similarity mapped linearly onto ``[0, 1]`` (clipped) before scaling into
            a band; ``None`` takes the min and max over all selected negatives of the run.
        related_score: ``centroid`` (cosine to the cluster centroid) or ``teacher`` (query similarity).
        search: ``exact`` (dense product + top-k) or ``index`` (``faiss_index.bin`` of the embed stage).
        nprobe: Inverted lists probed when the FAISS index is an IVF index.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda`` for the exact search.
        batch_size: Queries per batch.
        draws: Random draws per query for related and for easy candidates.
        seed: Seed of the related and easy draws.
    """

    top_k: int = 50
    docs_per_query: int = 8
    hard_min: int = 5
    hard_max: int = 7
    related: int = 1
    easy: int = 1
    relative_margin: float | None = 0.05
    duplicate_cosine: float | None = 0.98
    exclude_same_document: bool = True
    dedupe_text: bool = True
    positive_score: float = 10.0
    hard_band: list[float] = field(default_factory=lambda: [3.5, 9.0])
    related_band: list[float] = field(default_factory=lambda: [1.5, 3.0])
    easy_band: list[float] = field(default_factory=lambda: [0.0, 1.0])
    sim_range: list[float] | None = None
    related_score: str = "centroid"
    search: str = "exact"
    nprobe: int = 64
    device: str = "auto"
    batch_size: int = 1024
    draws: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hard_band", "related_band", "easy_band"):
            _check_band(name, getattr(self, name))
        if not (self.easy_band[1] < self.related_band[0] and self.related_band[1] < self.hard_band[0]
                and self.hard_band[1] < self.positive_score):
            raise ConfigError("mine bands: need easy < related < hard < positive_score, disjoint, got "
                              f"{self.easy_band}, {self.related_band}, {self.hard_band}, "
                              f"{self.positive_score}")
        sim_range = self.sim_range
        if sim_range is not None and (len(sim_range) != 2 or not sim_range[0] < sim_range[1]):
            raise ConfigError(f"mine.sim_range: need [low, high], low < high, or null; got {sim_range}")
        if not 1 <= self.hard_min <= self.hard_max <= self.top_k:
            raise ConfigError(f"mine.hard_min/hard_max: need 1 <= hard_min <= hard_max <= top_k, got "
                              f"{self.hard_min}, {self.hard_max}, {self.top_k}")
        if self.related < 0 or self.easy < 0:
            raise ConfigError("mine.related/easy: must be >= 0")
        n_hard = self.docs_per_query - 1 - self.related - self.easy
        if not self.hard_min <= n_hard <= self.hard_max:
            raise ConfigError(f"mine.docs_per_query: 1 + hard + related + easy leaves {n_hard} hard "
                              f"negatives, outside [hard_min, hard_max] = [{self.hard_min}, {self.hard_max}]")
        if self.relative_margin is not None and not 0.0 <= self.relative_margin < 1.0:
            raise ConfigError("mine.relative_margin: must be in [0, 1) or null")
        if self.duplicate_cosine is not None and not 0.0 < self.duplicate_cosine <= 1.0:
            raise ConfigError("mine.duplicate_cosine: must be in (0, 1] or null")
        for key, value, allowed in (("related_score", self.related_score, {"centroid", "teacher"}),
                                    ("search", self.search, {"exact", "index"}),
                                    ("device", self.device, {"auto", "cpu", "cuda"})):
            if value not in allowed:
                raise ConfigError(f"mine.{key}: unknown value {value!r}; expected one of {sorted(allowed)}")
        if self.batch_size <= 0 or self.draws <= 0 or self.nprobe <= 0:
            raise ConfigError("mine.batch_size/draws/nprobe: must be positive")

    @property
    def bands(self) -> dict[str, tuple[float, float]]:
        """Score interval per band name (the positive's is a point)."""
        return {"positive": (self.positive_score, self.positive_score),
                "hard": (self.hard_band[0], self.hard_band[1]),
                "related": (self.related_band[0], self.related_band[1]),
                "easy": (self.easy_band[0], self.easy_band[1])}


# --- inputs and outputs of the array-level miner ------------------------------------------------------

@dataclass
class MiningInputs:
    """Aligned arrays the miner works on (rows of ``doc_*`` follow ``document_ids.txt``).

    Attributes:
        doc_emb: ``(N, d)`` L2-normalised passage embeddings (float16 or float32; may be a memmap).
        query_emb: ``(Q, d)`` L2-normalised query embeddings.
        positive: ``(Q,)`` row of each query's positive passage.
        doc_group: ``(N,)`` integer code of each passage's source document (``source:doc_id``).
        text_hash: ``(N,)`` uint64 hash of each passage's normalised text.
        positive_hash: ``(Q,)`` uint64 hash of each positive's text as it appears in training.
        cluster: ``(N,)`` k-means cluster of each passage.
        centroids: ``(C, d)`` cluster centroids.
        query_key: ``(Q,)`` uint64 stable key per query (see :func:`query_keys`).
    """

    doc_emb: np.ndarray
    query_emb: np.ndarray
    positive: np.ndarray
    doc_group: np.ndarray
    text_hash: np.ndarray
    positive_hash: np.ndarray
    cluster: np.ndarray
    centroids: np.ndarray
    query_key: np.ndarray


@dataclass
class MiningResult:
    """Per-query output of :func:`mine_arrays` (rows of dropped queries hold ``-1`` / NaN).

    Attributes:
        reason: ``(Q,)`` index into ``("kept",) + DROP_REASONS``.
        docs: ``(Q, D)`` passage rows, sorted by score descending (positive first).
        bands: ``(Q, D)`` index into :data:`BANDS`.
        teacher_sims: ``(Q, D)`` query-passage inner products.
        scores: ``(Q, D)`` scores.
        sim_range: The ``[low, high]`` similarity range the scores were mapped from.
        window_filters: Candidates of the top-k window removed, per reason of :data:`WINDOW_FILTERS`.
        hard_counts: Histogram of hard negatives per kept row.
        related_short: Kept rows with fewer related passages than configured.
        easy_short: Kept rows with fewer easy negatives than configured.
    """

    reason: np.ndarray
    docs: np.ndarray
    bands: np.ndarray
    teacher_sims: np.ndarray
    scores: np.ndarray
    sim_range: tuple[float, float]
    window_filters: dict[str, int]
    hard_counts: dict[int, int]
    related_short: int
    easy_short: int

    @property
    def kept(self) -> np.ndarray:
        """``(Q,)`` bool: the query has a row."""
        return np.asarray(self.reason == 0)


# --- hashing -------------------------------------------------------------------------------------------

def normalize_for_hash(text: str) -> str:
    """Key used to detect duplicate texts: NFKC, case-folded, whitespace collapsed.

    Args:
        text: A passage or query text.

    Returns:
        The normalised key.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> int:
    """64-bit hash of :func:`normalize_for_hash` (BLAKE2b).

    Args:
        text: A passage text.

    Returns:
        An unsigned 64-bit integer.
    """
    return int.from_bytes(hashlib.blake2b(normalize_for_hash(text).encode("utf-8"), digest_size=8).digest(),
                          "little")


def text_hashes(texts: list[str]) -> np.ndarray:
    """Vector of :func:`text_hash` values.

    Args:
        texts: Texts.

    Returns:
        ``(len(texts),)`` uint64.
    """
    return np.fromiter((text_hash(t) for t in texts), dtype=np.uint64, count=len(texts))


def query_keys(query_ids: list[str], seed: int) -> np.ndarray:
    """Stable per-query keys for the seeded draws (independent of order and batch).

    Args:
        query_ids: Query ids.
        seed: The mining seed.

    Returns:
        ``(Q,)`` uint64.
    """
    prefix = f"{seed}\x1f".encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + q.encode("utf-8"), digest_size=8).digest(), "little")
         for q in query_ids), dtype=np.uint64, count=len(query_ids))


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def draw_uniform(keys: np.ndarray, salt: int, n: int) -> np.ndarray:
    """``n`` pseudo-random uint64 per key, a pure function of ``(key, salt, draw)``.

    Args:
        keys: ``(B,)`` uint64 query keys.
        salt: Distinguishes the streams (1: related, 2: easy).
        n: Draws per key.

    Returns:
        ``(B, n)`` uint64.
    """
    counters = (np.arange(n, dtype=np.uint64) + np.uint64(1) + np.uint64(salt) * np.uint64(1 << 32)) * _GOLDEN
    return _mix64(keys.astype(np.uint64)[:, None] ^ _mix64(counters)[None, :])


# --- search ----------------------------------------------------------------------------------------------

class Searcher(Protocol):
    """Top-k inner-product search over the passage embeddings."""

    def __call__(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(sims, rows)``, each ``(B, k)``, by similarity descending (row ``-1``: no result)."""
        ...


class ExactSearch:
    """Exact top-k by a dense product with the float32 passage matrix (PyTorch; CUDA when available).

    Args:
        docs: ``(N, d)`` float32 passage embeddings.
        device: ``auto``, ``cpu`` or ``cuda``.
        max_block: Upper bound on ``queries x passages`` scores held at once (passages are searched in
            blocks and merged when the corpus is larger).
    """

    def __init__(self, docs: np.ndarray, device: str = "auto", max_block: int = 1 << 27) -> None:
        import torch

        self._torch = torch
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.docs = torch.from_numpy(np.ascontiguousarray(docs, dtype=np.float32)).to(self.device)
        self.max_block = max_block

    def __call__(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search a batch of queries (see :class:`Searcher`)."""
        torch = self._torch
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(self.device)
        n = self.docs.shape[0]
        k_eff = min(k, n)
        block = max(k_eff, self.max_block // max(len(queries), 1))
        best_s: Any = None
        best_i: Any = None
        with torch.inference_mode():
            for start in range(0, n, block):
                s = q @ self.docs[start:start + block].T
                top_s, top_i = torch.topk(s, min(k_eff, s.shape[1]), dim=1)
                top_i = top_i + start
                if best_s is None:
                    best_s, best_i = top_s, top_i
                else:
                    cat_s, cat_i = torch.cat([best_s, top_s], 1), torch.cat([best_i, top_i], 1)
                    best_s, pos = torch.topk(cat_s, k_eff, dim=1)
                    best_i = torch.gather(cat_i, 1, pos)
        sims = best_s.float().cpu().numpy()
        rows = best_i.cpu().numpy().astype(np.int64)
        if k_eff < k:
            pad = k - k_eff
            sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        return sims, rows


class IndexSearch:
    """Search with a prebuilt FAISS index, then exact re-scoring of the returned passages.

    Args:
        index_path: ``faiss_index.bin`` (inner product over the passage embeddings, same row order).
        docs: ``(N, d)`` passage embeddings, used to recompute exact similarities.
        nprobe: Lists probed when the index is an IVF index.
    """

    def __init__(self, index_path: Path, docs: np.ndarray, nprobe: int = 64) -> None:
        import faiss

        self.index = faiss.read_index(str(index_path))
        with contextlib.suppress(RuntimeError):  # raised when the index is not an IVF index
            faiss.extract_index_ivf(self.index).nprobe = nprobe
        self.docs = docs

    def __call__(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search a batch of queries (see :class:`Searcher`)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        _, rows = self.index.search(q, k)
        rows = rows.astype(np.int64)
        sims = np.einsum("bkd,bd->bk", _gather(self.docs, np.maximum(rows, 0)), q)
        sims[rows < 0] = -np.inf
        order = np.lexsort((rows, -sims), axis=1)
        return np.take_along_axis(sims, order, 1), np.take_along_axis(rows, order, 1)


def _gather(emb: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``emb[rows]`` as float32, for any shape of ``rows``."""
    flat = np.asarray(emb[rows.reshape(-1)], dtype=np.float32)
    return flat.reshape(*rows.shape, emb.shape[1])


# --- the miner -------------------------------------------------------------------------------------------

@dataclass
class _Batch:
    """Per-batch picks before scores are assigned."""

    reason: np.ndarray
    docs: np.ndarray
    bands: np.ndarray
    sims: np.ndarray
    score_sims: np.ndarray
    n_hard: np.ndarray
    related_short: np.ndarray
    easy_short: np.ndarray
    window_filters: np.ndarray


def _first_true(mask: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Column order putting the first ``limit`` True entries of each row first, and their rank mask."""
    order = np.argsort(~mask, axis=1, kind="stable")[:, :limit]
    return order, np.take_along_axis(mask, order, 1)


def _earlier_equal(values: np.ndarray) -> np.ndarray:
    """``(B, n)`` True where the value already occurred earlier in the row."""
    n = values.shape[1]
    eq = values[:, :, None] == values[:, None, :]
    return np.asarray((eq & np.tri(n, n, -1, dtype=bool)[None]).any(axis=2))


class _Miner:
    def __init__(self, inputs: MiningInputs, cfg: MineConfig, searcher: Searcher) -> None:
        self.x = inputs
        self.cfg = cfg
        self.search = searcher
        order = np.argsort(inputs.cluster, kind="stable")
        n_clusters = max(int(inputs.cluster.max()) + 1 if len(inputs.cluster) else 0, len(inputs.centroids))
        self.members = order.astype(np.int64)
        sizes = np.bincount(inputs.cluster, minlength=n_clusters)
        self.c_size = sizes.astype(np.uint64)
        self.c_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        cent = np.asarray(inputs.centroids, dtype=np.float32)
        self.centroids = cent / np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)

    def batch(self, rows: np.ndarray) -> _Batch:
        x, cfg = self.x, self.cfg
        b, k, t, d_total = len(rows), cfg.top_k, cfg.draws, cfg.docs_per_query
        q = np.asarray(x.query_emb[rows], dtype=np.float32)
        pos = x.positive[rows].astype(np.int64)
        pe = _gather(x.doc_emb, pos)
        pos_sim = np.einsum("bd,bd->b", q, pe)
        pos_group = x.doc_group[pos]
        pos_hashes = np.stack([x.positive_hash[rows], x.text_hash[pos]], 1)
        margin = np.full(b, np.inf, dtype=np.float32) if cfg.relative_margin is None else (
            pos_sim - np.abs(pos_sim) * np.float32(cfg.relative_margin))
        keys = x.query_key[rows]

        def common_filters(cand: np.ndarray, sims: np.ndarray) -> list[np.ndarray]:
            """same_document, duplicate_text, near_duplicate, relative_margin for candidate rows."""
            same = (x.doc_group[cand] == pos_group[:, None]) if cfg.exclude_same_document else np.zeros(
                cand.shape, bool)
            h = x.text_hash[cand]
            dup = ((h[:, :, None] == pos_hashes[:, None, :]).any(2) if cfg.dedupe_text
                   else np.zeros(cand.shape, bool))
            if cfg.duplicate_cosine is None:
                near = np.zeros(cand.shape, bool)
            else:
                cos = np.einsum("bkd,bd->bk", _gather(x.doc_emb, cand), pe)
                near = cos >= np.float32(cfg.duplicate_cosine)
            return [same, dup, near, sims > margin[:, None]]

        # Hard negatives: the top-k window without the positive, then the filters.
        s_all, i_all = self.search(q, k + 1)
        win_order = np.argsort(i_all == pos[:, None], axis=1, kind="stable")[:, :k]
        win = np.take_along_axis(i_all, win_order, 1)
        win_s = np.take_along_axis(s_all, win_order, 1)
        missing = win < 0
        win_c = np.where(missing, 0, win)
        repeated = _earlier_equal(x.text_hash[win_c]) if cfg.dedupe_text else np.zeros(win.shape, bool)
        conds = [missing, *common_filters(win_c, win_s), repeated]
        win_reason = np.select(conds, list(range(1, len(conds) + 1)), 0)
        valid = win_reason == 0
        h_order, h_mask = _first_true(valid, cfg.hard_max)
        hard = np.take_along_axis(win_c, h_order, 1)
        hard_s = np.take_along_axis(win_s, h_order, 1)
        h_avail = h_mask.sum(1)
        hard_hash = np.where(h_mask, x.text_hash[hard], 0)

        def not_among_hard(cand: np.ndarray) -> np.ndarray:
            same_row = ((cand[:, :, None] == hard[:, None, :]) & h_mask[:, None, :]).any(2)
            same_text = ((x.text_hash[cand][:, :, None] == hard_hash[:, None, :]) & h_mask[:, None, :]).any(2)
            return np.asarray(~(same_row | same_text if cfg.dedupe_text else same_row))

        # Related: seeded draws inside the positive's cluster (none needed when no related or easy
        # passages are asked for: then hard negatives fill the whole row).
        c = x.cluster[pos].astype(np.int64)
        if cfg.related == 0 and cfg.easy == 0:
            t = 0
        offset = draw_uniform(keys, 1, t) % np.maximum(self.c_size[c], 1)[:, None]
        rel = self.members[self.c_start[c][:, None] + offset.astype(np.int64)]
        rel_emb = _gather(x.doc_emb, rel)
        rel_s = np.einsum("btd,bd->bt", rel_emb, q)
        rel_ok = ~np.any(common_filters(rel, rel_s), axis=0) & not_among_hard(rel) & ~_earlier_equal(rel)
        if cfg.dedupe_text:
            rel_ok &= ~_earlier_equal(x.text_hash[rel])
        rel_score_s = (np.einsum("btd,bd->bt", rel_emb, self.centroids[c]) if cfg.related_score == "centroid"
                       else rel_s)

        # Easy: seeded draws over the corpus, outside the window and the cluster.
        n_docs = np.uint64(len(x.doc_emb))
        easy = (draw_uniform(keys, 2, t) % n_docs).astype(np.int64)
        easy_s = np.einsum("btd,bd->bt", _gather(x.doc_emb, easy), q)
        in_window = (easy[:, :, None] == i_all[:, None, :]).any(2)
        easy_ok = (~np.any(common_filters(easy, easy_s), axis=0) & ~in_window
                   & (x.cluster[easy] != c[:, None]) & ~_earlier_equal(easy))
        if cfg.dedupe_text:
            easy_ok &= ~_earlier_equal(x.text_hash[easy])

        # Counts: related and easy as configured when available; hard negatives fill the row.
        r_av, e_av = rel_ok.sum(1), easy_ok.sum(1)
        n_r = np.minimum(cfg.related, r_av)
        n_e = np.minimum(cfg.easy, e_av)
        need = d_total - 1 - n_r - n_e
        n_h = np.minimum(need, h_avail)
        short = need - n_h
        extra = np.minimum(short, r_av - n_r)
        n_r, short = n_r + extra, short - extra
        extra = np.minimum(short, e_av - n_e)
        n_e, short = n_e + extra, short - extra
        reason = np.where(h_avail < cfg.hard_min, DROP_REASONS.index("too_few_hard_negatives") + 1,
                          np.where(short > 0, DROP_REASONS.index("too_few_candidates") + 1, 0))

        r_order, r_mask = _first_true(rel_ok, t)
        e_order, e_mask = _first_true(easy_ok, t)
        rank_t = np.arange(t)[None, :]
        take = np.concatenate([np.ones((b, 1), bool),
                               h_mask & (np.arange(cfg.hard_max)[None, :] < n_h[:, None]),
                               r_mask & (rank_t < n_r[:, None]), e_mask & (rank_t < n_e[:, None])], 1)
        cols = np.concatenate([pos[:, None], hard, np.take_along_axis(rel, r_order, 1),
                               np.take_along_axis(easy, e_order, 1)], 1)
        bands = np.concatenate([np.zeros((b, 1), np.int8), np.full((b, cfg.hard_max), 1, np.int8),
                                np.full((b, t), 2, np.int8), np.full((b, t), 3, np.int8)], 1)
        sims = np.concatenate([pos_sim[:, None], hard_s, np.take_along_axis(rel_s, r_order, 1),
                               np.take_along_axis(easy_s, e_order, 1)], 1)
        score_sims = np.concatenate([pos_sim[:, None], hard_s, np.take_along_axis(rel_score_s, r_order, 1),
                                     np.take_along_axis(easy_s, e_order, 1)], 1)
        sel = np.argsort(~take, axis=1, kind="stable")[:, :d_total]
        cols, bands = np.take_along_axis(cols, sel, 1), np.take_along_axis(bands, sel, 1)
        sims, score_sims = np.take_along_axis(sims, sel, 1), np.take_along_axis(score_sims, sel, 1)
        # Sort each row by band, then by the similarity its score is mapped from (descending).
        order = np.lexsort((-score_sims, bands), axis=1)
        cols, bands = np.take_along_axis(cols, order, 1), np.take_along_axis(bands, order, 1)
        sims, score_sims = np.take_along_axis(sims, order, 1), np.take_along_axis(score_sims, order, 1)
        dropped = reason != 0
        cols[dropped] = -1
        filt = np.stack([(win_reason == i + 1).sum(1) for i in range(len(WINDOW_FILTERS))], 1)
        return _Batch(reason.astype(np.int8), cols, bands, sims.astype(np.float32),
                      score_sims.astype(np.float32), np.where(dropped, 0, n_h),
                      ~dropped & (n_r < cfg.related), ~dropped & (n_e < cfg.easy), filt)


def band_scores(score_sims: np.ndarray, bands: np.ndarray, cfg: MineConfig,
                sim_range: tuple[float, float]) -> np.ndarray:
    """Map similarities into their band's score interval with one monotone map.

    ``f(s) = clip((s - lo) / (hi - lo), 0, 1)`` and ``score = band_low + (band_high - band_low) * f(s)``;
    positives get ``positive_score``.

    Args:
        score_sims: Similarities the scores are mapped from.
        bands: Band index per entry (into :data:`BANDS`).
        cfg: Bands and the positive score.
        sim_range: ``(lo, hi)`` of the linear map.

    Returns:
        float64 scores, rounded to 6 decimals.
    """
    lo, hi = sim_range
    f = np.clip((score_sims.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.ones(
        score_sims.shape)
    low = np.array([cfg.positive_score, cfg.hard_band[0], cfg.related_band[0], cfg.easy_band[0]])
    high = np.array([cfg.positive_score, cfg.hard_band[1], cfg.related_band[1], cfg.easy_band[1]])
    b = np.clip(bands, 0, 3)
    return np.round(low[b] + (high[b] - low[b]) * f, 6)


def mine_arrays(inputs: MiningInputs, cfg: MineConfig, searcher: Searcher | None = None,
                progress: Callable[[int], None] | None = None) -> MiningResult:
    """Mine rows for every query of ``inputs`` (the array-level core of :func:`mine`).

    Args:
        inputs: Aligned embeddings, ids and hashes.
        cfg: Mining settings.
        searcher: Top-k search; :class:`ExactSearch` over ``inputs.doc_emb`` when ``None``.
        progress: Optional callback with the number of queries done.

    Returns:
        The rows (sorted by score descending) and the counters.
    """
    if searcher is None:
        searcher = ExactSearch(np.asarray(inputs.doc_emb), cfg.device)
    miner = _Miner(inputs, cfg, searcher)
    n_q, d_total = len(inputs.query_emb), cfg.docs_per_query
    out = _Batch(np.zeros(n_q, np.int8), np.full((n_q, d_total), -1, np.int64),
                 np.zeros((n_q, d_total), np.int8),
                 np.full((n_q, d_total), np.nan, np.float32), np.full((n_q, d_total), np.nan, np.float32),
                 np.zeros(n_q, np.int64), np.zeros(n_q, bool), np.zeros(n_q, bool),
                 np.zeros((n_q, len(WINDOW_FILTERS)), np.int64))
    for start in range(0, n_q, cfg.batch_size):
        sl = slice(start, min(start + cfg.batch_size, n_q))
        res = miner.batch(np.arange(sl.start, sl.stop))
        for name in ("reason", "docs", "bands", "sims", "score_sims", "n_hard", "related_short", "easy_short",
                     "window_filters"):
            getattr(out, name)[sl] = getattr(res, name)
        if progress is not None:
            progress(sl.stop)
    kept = out.reason == 0
    negatives = kept[:, None] & (out.bands > 0)
    if cfg.sim_range is not None:
        sim_range = (float(cfg.sim_range[0]), float(cfg.sim_range[1]))
    elif negatives.any():
        sim_range = (float(out.score_sims[negatives].min()), float(out.score_sims[negatives].max()))
    else:
        sim_range = (0.0, 1.0)
    scores = np.where(kept[:, None], band_scores(out.score_sims, out.bands, cfg, sim_range), np.nan)
    return MiningResult(
        reason=out.reason, docs=out.docs, bands=out.bands, teacher_sims=out.sims, scores=scores,
        sim_range=sim_range,
        window_filters={n: int(v) for n, v in zip(WINDOW_FILTERS, out.window_filters.sum(0), strict=True)},
        hard_counts={int(k): int(v) for k, v in sorted(Counter(out.n_hard[kept].tolist()).items())},
        related_short=int(out.related_short.sum()), easy_short=int(out.easy_short.sum()))


# --- files ---------------------------------------------------------------------------------------------

@dataclass
class MineReport:
    """Counters written to ``mine_report.json``."""

    queries: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    window_filters: dict[str, int] = field(default_factory=dict)
    hard_per_row: dict[str, int] = field(default_factory=dict)
    related_short: int = 0
    easy_short: int = 0
    sim_range: list[float] = field(default_factory=list)
    band_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _rows_of(ids: pa.Array, wanted: pa.Array) -> np.ndarray:
    """Row of each ``wanted`` id in ``ids`` (``-1`` when absent)."""
    import pyarrow.compute as pc

    idx = pc.index_in(wanted, value_set=ids)
    return np.asarray(idx.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def load_inputs(passages: Path, queries: Path, embeddings: Path, seed: int,
                batch_rows: int = 65536) -> tuple[MiningInputs, list[str], list[str], np.ndarray]:
    """Align ``passages.parquet``, ``queries.parquet`` and the embed stage's outputs.

    Args:
        passages: Passages (``passage_id``, ``source``, ``doc_id``, ``text``).
        queries: Queries (``query_id``, ``positive_id``, ``positive_text``).
        embeddings: Folder with ``document_embeddings.npy``, ``document_ids.txt``,
            ``query_embeddings.npy``, ``query_ids.txt``, ``cluster_ids.npy``, ``centroids.npy``.
        seed: Seed of the per-query keys.
        batch_rows: Passages read per Arrow batch.

    Returns:
        ``(inputs, passage_ids, query_ids, reason)``: the inputs for the embedded queries whose positive is
        embedded, the passage ids in embedding order, the ids of those queries, and a drop-reason code per
        row of ``queries.parquet`` (0: mined, else ``DROP_REASONS.index + 1``).

    Raises:
        ValueError: If the embedding files disagree with each other or with the passages.
    """
    doc_ids = _read_lines(embeddings / "document_ids.txt")
    doc_emb = np.load(embeddings / "document_embeddings.npy", mmap_mode="r")
    cluster = np.asarray(np.load(embeddings / "cluster_ids.npy"), dtype=np.int64)
    centroids = np.load(embeddings / "centroids.npy")
    if not len(doc_ids) == len(doc_emb) == len(cluster):
        raise ValueError(f"{embeddings}: {len(doc_ids)} document ids, {len(doc_emb)} embeddings, "
                         f"{len(cluster)} cluster ids")
    if len(cluster) and not 0 <= cluster.min() <= cluster.max() < len(centroids):
        raise ValueError(f"{embeddings}: cluster ids span [{cluster.min()}, {cluster.max()}] but there are "
                         f"{len(centroids)} centroids")
    n = len(doc_ids)
    doc_set = pa.array(doc_ids, pa.string())
    group = np.full(n, -1, np.int64)
    hashes = np.zeros(n, np.uint64)
    codes: dict[str, int] = {}
    for rb in pq.ParquetFile(passages, pre_buffer=False).iter_batches(batch_size=batch_rows,
                                                   columns=["passage_id", "source", "doc_id", "text"]):
        rows = _rows_of(doc_set, rb.column("passage_id"))
        keep = rows >= 0
        cols = rb.to_pydict()
        keys = [f"{s}:{d}" for s, d in zip(cols["source"], cols["doc_id"], strict=True)]
        group[rows[keep]] = [codes.setdefault(key, len(codes))
                             for key, ok in zip(keys, keep, strict=True) if ok]
        hashes[rows[keep]] = text_hashes([t for t, ok in zip(cols["text"], keep, strict=True) if ok])
    if (group < 0).any():
        missing = [doc_ids[i] for i in np.flatnonzero(group < 0)[:3]]
        raise ValueError(f"{int((group < 0).sum())} embedded passages are not in {passages}, e.g. {missing}")

    qt = pq.read_table(queries, columns=["query_id", "positive_id", "positive_text"])
    q_ids_emb = _read_lines(embeddings / "query_ids.txt")
    query_emb = np.load(embeddings / "query_embeddings.npy", mmap_mode="r")
    if len(q_ids_emb) != len(query_emb):
        raise ValueError(f"{embeddings}: {len(q_ids_emb)} query ids, {len(query_emb)} query embeddings")
    q_rows = _rows_of(pa.array(q_ids_emb, pa.string()), qt.column("query_id").combine_chunks())
    p_rows = _rows_of(doc_set, qt.column("positive_id").combine_chunks())
    reason = np.where(q_rows < 0, DROP_REASONS.index("query_not_embedded") + 1,
                      np.where(p_rows < 0, DROP_REASONS.index("positive_not_embedded") + 1, 0))
    reason = reason.astype(np.int8)
    ok = reason == 0
    qids = [q for q, keep in zip(qt.column("query_id").to_pylist(), ok, strict=True) if keep]
    pos_text = [t for t, keep in zip(qt.column("positive_text").to_pylist(), ok, strict=True) if keep]
    pos_rows = p_rows[ok]
    pos_hash = hashes[pos_rows].copy()
    override = [i for i, t in enumerate(pos_text) if t is not None]
    pos_hash[override] = text_hashes([pos_text[i] for i in override])
    inputs = MiningInputs(doc_emb=doc_emb, query_emb=np.asarray(query_emb[q_rows[ok]]), positive=pos_rows,
                          doc_group=group, text_hash=hashes, positive_hash=pos_hash, cluster=cluster,
                          centroids=centroids, query_key=query_keys(qids, seed))
    return inputs, doc_ids, qids, reason


def mine(passages: Path, queries: Path, embeddings: Path, out: Path, report_path: Path, cfg: MineConfig,
         progress: Callable[[int], None] | None = None) -> MineReport:
    """Mine ``mined.parquet`` from the passages, queries and embeddings.

    Args:
        passages: ``passages.parquet`` of the chunk stage.
        queries: ``queries.parquet`` of the query stage.
        embeddings: The embed stage's folder (see :func:`load_inputs`); ``faiss_index.bin`` is read when
            ``cfg.search == "index"``.
        out: Output Parquet (``query_id, doc_ids, scores, bands, teacher_sims``), one row per kept query,
            in the order of ``queries.parquet``.
        report_path: Output JSON with counts, drops per reason and the settings.
        cfg: Mining settings.
        progress: Optional callback with the number of queries done.

    Returns:
        The report.
    """
    t0 = time.perf_counter()
    inputs, doc_ids, qids, reason = load_inputs(passages, queries, embeddings, cfg.seed)
    searcher: Searcher | None = (IndexSearch(embeddings / "faiss_index.bin", inputs.doc_emb, cfg.nprobe)
                                 if cfg.search == "index" else None)
    res = mine_arrays(inputs, cfg, searcher, progress)
    reason[reason == 0] = res.reason
    kept = res.kept
    ids = np.asarray(doc_ids, dtype=object)
    table = pa.Table.from_pydict({
        "query_id": [q for q, k in zip(qids, kept, strict=True) if k],
        "doc_ids": [ids[r].tolist() for r in res.docs[kept]],
        "scores": res.scores[kept].tolist(),
        "bands": [[BANDS[b] for b in row] for row in res.bands[kept]],
        "teacher_sims": res.teacher_sims[kept].tolist(),
    }, schema=MINED_SCHEMA)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    counts = Counter(reason.tolist())
    band_stats: dict[str, dict[str, float]] = {}
    for i, name in enumerate(BANDS):
        vals = res.scores[kept][res.bands[kept] == i]
        if len(vals):
            band_stats[name] = {"n": int(len(vals)), "min": float(vals.min()),
                                "mean": round(float(vals.mean()), 6), "max": float(vals.max())}
    report = MineReport(
        queries=len(reason), kept=int(kept.sum()),
        dropped={name: int(counts.get(i + 1, 0)) for i, name in enumerate(DROP_REASONS)},
        window_filters=res.window_filters, hard_per_row={str(k): v for k, v in res.hard_counts.items()},
        related_short=res.related_short, easy_short=res.easy_short,
        sim_range=[round(res.sim_range[0], 6), round(res.sim_range[1], 6)], band_scores=band_stats,
        settings=asdict(cfg), seconds=round(time.perf_counter() - t0, 3))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(asdict(report), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return report
