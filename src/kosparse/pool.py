"""An ordered, bounded ``Pool.imap`` shared by the stages that spread batches over worker processes."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, TypeVar

T = TypeVar("T")


def bounded_imap(pool: Any, fn: Callable[[Any], Any], items: Iterator[T], window: int,
                 payload: Callable[[T], Any] | None = None) -> Iterator[tuple[T, Any]]:
    """Ordered ``pool.imap`` that keeps at most ``window`` items in flight, yielding ``(item, result)``.

    ``Pool.imap`` drains its input iterator as fast as it can, so on a large corpus the whole input ends up
    queued in memory (3 GB peak RSS on 1 M documents in chunk); this bound keeps memory flat. The item
    stays with the caller while its ``payload`` (the item itself by default) goes to the worker.

    Args:
        pool: A ``multiprocessing`` pool.
        fn: The function the workers apply (importable: pools pickle it by name).
        items: Work items, consumed lazily.
        window: Most items submitted and not yet yielded.
        payload: What of an item is sent to ``fn``.
    """
    send = payload or (lambda item: item)
    pending: deque[tuple[T, Any]] = deque(
        (item, pool.apply_async(fn, (send(item),))) for item in islice(items, window))
    while pending:
        item, result = pending.popleft()
        out = result.get()
        for nxt in islice(items, 1):
            pending.append((nxt, pool.apply_async(fn, (send(nxt),))))
        yield item, out
