"""A compiled word -> token-count cache for the chunk stage (see :class:`kosparse.chunk.WordTokenCounter`).

Why hand-written: chunk measures passages by summing per-word token counts, and with a Python ``dict``
the per-word work — ``str.split``, hashing every word, a lookup in a dictionary of a million entries,
summing — took 8.8 s of the stage's 35 s on one core for the 19,144 shared articles (2.9 s with
this table, the per-document arrays included). No maintained library does this one thing in
compiled code: Arrow and pandas hash a batch's words in C, but still need a Python object per
distinct word to look it up in a cache that lives across batches. This module scans a batch of
documents' code points, splits them into words on the whitespace set of ``str.split`` and looks
every word up in an open-addressing hash table, all compiled with Numba. Keys are stored whole
(their code points) and compared on a hash match, so a lookup is exact: a hash collision can cost a
probe, never a wrong count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

_EMPTY = np.int32(-1)
PENDING = -1
"""``values`` of a word that was inserted by this batch and is waiting for its count."""

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)
def _mix(h: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """splitmix64's finaliser: spreads FNV's high-entropy bits into the low bits the table masks with."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


@njit(cache=True, nogil=True)
def _count_words(cp: np.ndarray, is_space: np.ndarray) -> int:  # pragma: no cover - compiled
    """Number of words (maximal runs of non-space code points) in ``cp``."""
    n_table = is_space.shape[0]
    words = 0
    inside = False
    for i in range(cp.shape[0]):
        c = cp[i]
        space = c < n_table and is_space[c]
        if not space and not inside:
            words += 1
        inside = not space
    return words


@njit(cache=True, nogil=True)
def _scan(cp: np.ndarray, is_space: np.ndarray, doc_ends: np.ndarray, keys_off: np.ndarray,
          keys_len: np.ndarray, keys_hash: np.ndarray, values: np.ndarray, pool: np.ndarray,
          state: np.ndarray, max_words: int, occ_slot: np.ndarray, occ_start: np.ndarray,
          occ_end: np.ndarray, doc_words: np.ndarray, miss_slot: np.ndarray, miss_start: np.ndarray,
          miss_end: np.ndarray) -> tuple[int, int]:  # pragma: no cover
    """Split ``cp`` into words and find (or insert) each in the table.

    Returns ``(occurrences, new words)``, or ``(-1, -1)`` when the table reached ``max_words`` (the caller
    clears it and scans again). ``state`` holds ``[words in the table, code points used in pool]``.
    """
    mask = keys_off.shape[0] - 1
    n_table = is_space.shape[0]
    n_words = state[0]
    pool_used = state[1]
    n_occ = 0
    n_miss = 0
    pos = 0
    for d in range(doc_ends.shape[0]):
        end = doc_ends[d]
        first = n_occ
        while pos < end:
            c = cp[pos]
            if c < n_table and is_space[c]:
                pos += 1
                continue
            start = pos
            h = _FNV_OFFSET
            while pos < end:
                c = cp[pos]
                if c < n_table and is_space[c]:
                    break
                h = (h ^ np.uint64(c)) * _FNV_PRIME
                pos += 1
            length = pos - start
            h = _mix(h ^ np.uint64(length))
            i = np.int64(h & np.uint64(mask))
            while True:
                off = keys_off[i]
                if off == _EMPTY:
                    if n_words >= max_words:
                        return -1, -1
                    pool[pool_used:pool_used + length] = cp[start:pos]
                    keys_off[i] = pool_used
                    keys_len[i] = length
                    keys_hash[i] = np.uint32(h >> np.uint64(32))  # the bits the slot index did not use
                    values[i] = PENDING
                    pool_used += length
                    n_words += 1
                    miss_slot[n_miss] = i
                    miss_start[n_miss] = start
                    miss_end[n_miss] = pos
                    n_miss += 1
                    break
                if keys_hash[i] == np.uint32(h >> np.uint64(32)) and keys_len[i] == length:
                    same = True
                    for k in range(length):
                        if pool[off + k] != cp[start + k]:
                            same = False
                            break
                    if same:
                        break
                i = (i + 1) & mask
            occ_slot[n_occ] = i
            occ_start[n_occ] = start
            occ_end[n_occ] = pos
            n_occ += 1
        doc_words[d] = n_occ - first
        pos = end
    state[0] = n_words
    state[1] = pool_used
    return n_occ, n_miss


@dataclass
class BatchWords:
    """The words of a batch of documents, as :meth:`WordTable.scan` found them.

    Attributes:
        slots: Table slot of each word occurrence, in text order.
        starts, ends: Code-point offsets of each occurrence in the joined batch text.
        doc_words: Number of occurrences per document.
        new_slots: Slots of the words inserted by this batch (their values are :data:`PENDING`).
        new_starts, new_ends: Offsets of the first occurrence of each inserted word (to read it back).
    """

    slots: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    doc_words: np.ndarray
    new_slots: np.ndarray
    new_starts: np.ndarray
    new_ends: np.ndarray


class WordTable:
    """Word -> token count, bounded to ``capacity`` words (cleared when full).

    Args:
        capacity: Most words held; the table has at least twice as many slots.
        is_space: Boolean lookup over code points (a code point past its end is not a space).
    """

    def __init__(self, capacity: int, is_space: np.ndarray) -> None:
        self.is_space = is_space
        self.clears = 0
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        """Empty arrays for ``capacity`` words."""
        self.capacity = max(int(capacity), 1)
        slots = 1 << max(4, (2 * self.capacity - 1).bit_length())
        self.keys_off = np.full(slots, _EMPTY, dtype=np.int32)  # into the pool, which stays under 2**31
        self.keys_len = np.zeros(slots, dtype=np.int32)
        self.keys_hash = np.zeros(slots, dtype=np.uint32)
        self.values = np.zeros(slots, dtype=np.int32)
        self.pool = np.zeros(max(1024, 8 * self.capacity), dtype=np.uint32)
        self.state = np.zeros(2, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.state[0])

    def clear(self) -> None:
        """Forget every word."""
        self.keys_off.fill(_EMPTY)
        self.state[:] = 0
        self.clears += 1

    def scan(self, cp: np.ndarray, doc_ends: np.ndarray) -> BatchWords:
        """Find every word of the documents whose code points end at ``doc_ends`` in ``cp``.

        Words new to the table are inserted with the value :data:`PENDING`; the caller counts them and
        stores the counts with :meth:`set_counts`. A batch whose new words would overflow the table first
        clears it (a batch with more distinct words than ``capacity`` gets a table of its own size).
        """
        n = int(cp.shape[0])
        if n >= 2**31:
            raise ValueError(f"a batch of {n:,} characters is too large for the word table (fewer documents per batch)")
        n_words = int(_count_words(cp, self.is_space))  # sizes the outputs exactly (memory, not time)
        occ_slot = np.empty(n_words, dtype=np.int64)
        occ_start = np.empty(n_words, dtype=np.int32)  # offsets in one batch's text
        occ_end = np.empty(n_words, dtype=np.int32)
        doc_words = np.zeros(doc_ends.shape[0], dtype=np.int64)
        cleared = False
        if int(self.state[1]) + n >= 2**31:  # pool offsets are int32
            self.clear()
            cleared = True
        while True:
            if self.pool.shape[0] < int(self.state[1]) + n:
                self.pool = np.resize(self.pool, 2 * (int(self.state[1]) + n))
            miss_slot = np.empty(n_words, dtype=np.int64)
            miss_start, miss_end = np.empty(n_words, dtype=np.int32), np.empty(n_words, dtype=np.int32)
            n_occ, n_miss = _scan(cp, self.is_space, doc_ends, self.keys_off, self.keys_len, self.keys_hash,
                                  self.values, self.pool, self.state, self.capacity, occ_slot, occ_start,
                                  occ_end, doc_words, miss_slot, miss_start, miss_end)
            if n_occ >= 0:
                break
            if not cleared:
                self.clear()  # full: start afresh with this batch's words
                cleared = True
            else:  # more distinct words in this one batch than the table holds: give it a larger table
                self._allocate(2 * self.capacity)
        return BatchWords(occ_slot[:n_occ], occ_start[:n_occ], occ_end[:n_occ], doc_words, miss_slot[:n_miss],
                          miss_start[:n_miss], miss_end[:n_miss])

    def set_counts(self, slots: np.ndarray, counts: np.ndarray) -> None:
        """Store the token counts of the words at ``slots``."""
        self.values[slots] = counts
