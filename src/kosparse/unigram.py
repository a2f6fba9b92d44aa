"""Compiled token counts of single words under a Unigram vocabulary (for :mod:`kosparse.chunk`).

Why hand-written: chunk counts the tokens of every word its cache has not seen (1.57 M distinct words
on the 19,144 ingested shared articles). The ``tokenizers`` pipeline takes ~15 µs a word (alignments,
pre-tokenizer regexes, an ``Encoding`` per call) and SentencePiece's Python API ~2.3–3.1 µs (a list
of ids per word) — measured on those words. Chunk only needs the *number* of pieces, which no library
returns without building the pieces; this module runs the same Viterbi search over a trie of the
vocabulary in compiled code, on the code points chunk already holds: ~0.6 µs a word, with no Python
object per word.

The search is the one ``tokenizers``' ``Unigram::encode_optimized`` runs (itself SentencePiece's
``EncodeOptimized``): for each start position, every vocabulary piece that begins there, shortest
first, offers ``score + best score up to the start`` to the position it ends at, which keeps the
first offer it sees unless a later one is strictly greater. Scores are summed in float64, as
``tokenizers`` does (SentencePiece sums float32). Only words whose every character is a piece on its
own reach this code (the caller checks), so the unknown-character branch is not needed and not
implemented. ``tests/test_chunk.py`` compares the counts with the tokenizer's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

METASPACE = 0x2581
"""``▁``: the Metaspace pre-tokenizer puts it before every word, so the model sees ``▁`` + word."""

_EMPTY = np.int64(-1)
_CP_BITS = 21  # code points are < 0x110000 = 2**21


@njit(cache=True, nogil=True)
def _slot(key: np.int64, mask: int) -> np.int64:  # pragma: no cover - compiled
    """Fibonacci hashing of an edge key (parent node, code point) into the table."""
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    return np.int64(h & np.uint64(mask))


@njit(cache=True, nogil=True)
def _insert(cps: np.ndarray, piece_ends: np.ndarray, scores: np.ndarray, keys: np.ndarray,
            children: np.ndarray, node_score: np.ndarray, is_piece: np.ndarray) -> int:  # pragma: no cover
    """Insert every piece (code points ``cps``, piece ``p`` ending at ``piece_ends[p]``) into the trie.

    An edge is a table entry keyed ``parent << 21 | code point`` holding the child node. A later piece
    with the same text overwrites an earlier one's score, as ``tokenizers``' piece -> id map does.
    Returns the number of nodes (the root is node 0).
    """
    mask = keys.shape[0] - 1
    n_nodes = 1
    start = 0
    for p in range(piece_ends.shape[0]):
        end = piece_ends[p]
        node = 0
        for k in range(start, end):
            key = (np.int64(node) << _CP_BITS) | np.int64(cps[k])
            i = _slot(key, mask)
            while keys[i] != _EMPTY and keys[i] != key:
                i = (i + 1) & mask
            if keys[i] == _EMPTY:
                keys[i] = key
                children[i] = n_nodes
                n_nodes += 1
            node = children[i]
        if end > start:
            node_score[node] = scores[p]
            is_piece[node] = True
        start = end
    return n_nodes


@njit(cache=True, nogil=True)
def _rehash(keys: np.ndarray, children: np.ndarray, new_keys: np.ndarray,
            new_children: np.ndarray) -> None:  # pragma: no cover - compiled
    """Move every edge into a smaller table (sized once the number of nodes is known)."""
    mask = new_keys.shape[0] - 1
    for i in range(keys.shape[0]):
        key = keys[i]
        if key == _EMPTY:
            continue
        j = _slot(key, mask)
        while new_keys[j] != _EMPTY:
            j = (j + 1) & mask
        new_keys[j] = key
        new_children[j] = children[i]


@njit(cache=True, nogil=True)
def _counts(cp: np.ndarray, starts: np.ndarray, ends: np.ndarray, keys: np.ndarray, children: np.ndarray,
            node_score: np.ndarray, is_piece: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """Pieces in the best segmentation of ``▁`` + ``cp[starts[w]:ends[w]]``, for every word ``w``."""
    mask = keys.shape[0] - 1
    size = 64
    seq = np.empty(size, dtype=np.int64)
    best = np.empty(size, dtype=np.float64)
    count = np.empty(size, dtype=np.int64)
    seen = np.empty(size, dtype=np.bool_)
    for w in range(starts.shape[0]):
        a, b = starts[w], ends[w]
        m = b - a + 1  # symbols: the ▁ and the word's code points
        if m + 1 > size:
            size = 2 * (m + 1)
            seq = np.empty(size, dtype=np.int64)
            best = np.empty(size, dtype=np.float64)
            count = np.empty(size, dtype=np.int64)
            seen = np.empty(size, dtype=np.bool_)
        seq[0] = METASPACE
        for k in range(a, b):
            seq[k - a + 1] = cp[k]
        seen[:m + 1] = False
        best[0] = 0.0
        count[0] = 0
        seen[0] = True
        for i in range(m):
            if not seen[i]:  # no piece ends here (cannot happen for a word of single-piece characters)
                continue
            here = best[i]
            node = 0
            for j in range(i, m):  # walk the trie along the word: the pieces that start at i
                key = (np.int64(node) << _CP_BITS) | seq[j]
                s = _slot(key, mask)
                while keys[s] != _EMPTY and keys[s] != key:
                    s = (s + 1) & mask
                if keys[s] == _EMPTY:
                    break
                node = children[s]
                if is_piece[node]:
                    cand = node_score[node] + here
                    if not seen[j + 1] or cand > best[j + 1]:
                        best[j + 1] = cand
                        count[j + 1] = count[i] + 1
                        seen[j + 1] = True
        out[w] = count[m] if seen[m] else -1


class UnigramTrie:
    """A Unigram vocabulary as a compiled trie that counts the pieces of single words.

    Args:
        vocab: ``(piece, score)`` pairs in id order (``tokenizer.json``'s ``model.vocab``).
    """

    def __init__(self, vocab: list[list[object]] | list[tuple[str, float]]) -> None:
        pieces = [str(p) for p, _ in vocab]
        cps = np.frombuffer("".join(pieces).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ends = np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)))
        scores = np.fromiter((float(s) for _, s in vocab), dtype=np.float64, count=len(vocab))  # type: ignore[arg-type]
        max_nodes = len(cps) + 1  # one node per code point at most
        keys = np.full(_table_size(max_nodes), _EMPTY, dtype=np.int64)
        children = np.zeros(keys.shape[0], dtype=np.int32)
        node_score = np.zeros(max_nodes, dtype=np.float64)
        is_piece = np.zeros(max_nodes, dtype=np.bool_)
        n_nodes = int(_insert(cps, ends, scores, keys, children, node_score, is_piece))
        self.keys = np.full(_table_size(n_nodes), _EMPTY, dtype=np.int64)  # shared prefixes: far fewer nodes
        self.children = np.zeros(self.keys.shape[0], dtype=np.int32)
        _rehash(keys, children, self.keys, self.children)
        self.node_score = node_score[:n_nodes].copy()
        self.is_piece = is_piece[:n_nodes].copy()
        self.nodes = n_nodes

    def counts(self, cp: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Token counts of the words ``cp[starts[i]:ends[i]]`` (each seen as ``▁`` + word).

        A word with a character that is no piece on its own can have no segmentation: its count is -1
        (callers send only words of single-piece characters).
        """
        out = np.empty(len(starts), dtype=np.int32)
        _counts(cp, np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), self.keys,
                self.children, self.node_score, self.is_piece, out)
        return out


def _table_size(n_edges: int) -> int:
    """A power of two at least twice ``n_edges`` (open addressing stays under half full)."""
    return 1 << max(4, (2 * n_edges - 1).bit_length())


@njit(cache=True, nogil=True)
def _all_marked(cp: np.ndarray, starts: np.ndarray, ends: np.ndarray, table: np.ndarray,
                out: np.ndarray) -> None:  # pragma: no cover - compiled
    n_table = table.shape[0]
    for w in range(starts.shape[0]):
        ok = True
        for k in range(starts[w], ends[w]):
            c = cp[k]
            if c >= n_table or not table[c]:
                ok = False
                break
        out[w] = ok


def all_marked(cp: np.ndarray, starts: np.ndarray, ends: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Whether every code point of each word ``cp[starts[i]:ends[i]]`` is marked in the boolean ``table``."""
    out = np.empty(len(starts), dtype=np.bool_)
    _all_marked(cp, np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), table, out)
    return out
