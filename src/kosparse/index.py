"""Index: a faiss inner-product index over L2-normalised document embeddings.

Three kinds, one metric (inner product = cosine on normalised vectors):

* ``flat`` — exact search (``IndexFlatIP``); the default for corpora up to a few million passages;
* ``ivf`` — ``IndexIVFFlat`` with ``nlist`` lists trained on a seeded sample, searched with ``nprobe``;
* ``hnsw`` — ``IndexHNSWFlat`` graph (CPU only in faiss).

Embeddings may be a float16 memmap: vectors are converted to float32 in batches while they are
added, so the only full-size float32 copy is the index itself. On a machine with ``faiss-gpu``
and a visible GPU, flat and IVF indexes are built and searched on the GPU and saved as CPU indexes.

faiss-cpu and faiss-gpu install the same ``faiss`` module; having both breaks it in confusing ways,
so importing this module checks the installed distributions first.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kosparse.config import require

__all__ = [
    "IndexConfig",
    "build_index",
    "check_faiss_distributions",
    "exact_search",
    "gpu_available",
    "index_report",
    "index_to_gpu",
    "load_index",
    "recall_at_k",
    "resolve_nlist",
    "resolve_use_gpu",
    "save_index",
    "search",
]


def check_faiss_distributions(names: list[str] | None = None) -> None:
    """Fail clearly when both a faiss-cpu and a faiss-gpu distribution are installed.

    Args:
        names: Installed distribution names (read from ``importlib.metadata`` when ``None``).

    Raises:
        ImportError: If both kinds are present, naming them and the fix.
    """
    if names is None:
        names = [d.metadata["Name"] or "" for d in importlib.metadata.distributions()]
    norm = {re.sub(r"[-_.]+", "-", n).lower() for n in names}
    cpu = sorted(n for n in norm if n == "faiss-cpu")
    gpu = sorted(n for n in norm if n.startswith("faiss-gpu"))
    if cpu and gpu:
        raise ImportError(f"both {cpu + gpu} are installed; they provide the same `faiss` module and "
                          f"clash. Keep one: `pip uninstall -y {' '.join(cpu)}` on a GPU machine, or "
                          f"`pip uninstall -y {' '.join(gpu)}` on a CPU one (then reinstall the kept one).")


check_faiss_distributions()

import faiss  # noqa: E402  (after the distribution check)


def gpu_available() -> bool:
    """Whether this faiss build has GPU support and sees at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def resolve_use_gpu(use_gpu: bool | str, key: str) -> bool:
    """Resolve a ``use_gpu`` setting.

    Args:
        use_gpu: ``auto``, ``True`` or ``False``.
        key: Config section for the error message.

    Returns:
        Whether to use the GPU.

    Raises:
        RuntimeError: If the GPU is required but faiss cannot use one.
    """
    if use_gpu == "auto":
        return gpu_available()
    if use_gpu is True and not gpu_available():
        raise RuntimeError(f"{key}.use_gpu is true but faiss has no GPU support or sees no GPU")
    return bool(use_gpu)


@dataclass
class IndexConfig:
    """The ``index`` section.

    Attributes:
        kind: ``flat``, ``ivf`` or ``hnsw``.
        nlist: IVF lists; ``None`` picks ``4 * sqrt(N)``, at most ``N // 39`` (faiss's training minimum).
        nprobe: IVF lists visited per query.
        hnsw_m: HNSW neighbours per node.
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW search-time beam width.
        use_gpu: ``auto`` (GPU when faiss has one), ``true`` or ``false``. HNSW always runs on CPU.
        train_size: At most this many vectors (seeded sample) train the IVF quantizer.
        add_batch_size: Vectors converted to float32 and added per step.
        seed: Seed of the training sample.
    """

    kind: str = "flat"
    nlist: int | None = None
    nprobe: int = 32
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    use_gpu: bool | str = "auto"
    train_size: int = 262_144
    add_batch_size: int = 65_536
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.kind in {"flat", "ivf", "hnsw"}, "index.kind", f"unknown kind {self.kind!r}"),
            (self.nlist is None or self.nlist > 0, "index.nlist", "must be positive or null"),
            (min(self.nprobe, self.hnsw_m, self.ef_construction, self.ef_search) > 0, "index.nprobe",
             "nprobe, hnsw_m, ef_construction and ef_search must be positive"),
            (self.use_gpu in (True, False, "auto"), "index.use_gpu",
             f"must be auto/true/false, got {self.use_gpu!r}"),
            (self.train_size > 0 and self.add_batch_size > 0, "index.train_size", "must be positive"),
        ]
        for ok, key, message in checks:
            require(ok, key, message)


def resolve_nlist(n: int, cfg: IndexConfig) -> int:
    """The number of IVF lists for ``n`` vectors.

    Args:
        n: Number of vectors.
        cfg: Index settings (``nlist`` ``None`` means automatic).

    Returns:
        ``cfg.nlist`` (capped at ``n``), or ``4 * sqrt(n)`` capped at ``n // 39``, at least 1.
    """
    if cfg.nlist is not None:
        return max(1, min(cfg.nlist, n))
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def _f32(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block, dtype=np.float32)


def _set_search_params(index: Any, cfg: IndexConfig) -> None:
    if cfg.kind == "ivf":
        ivf = index if hasattr(index, "nprobe") else faiss.extract_index_ivf(index)
        ivf.nprobe = min(cfg.nprobe, ivf.nlist)
    elif cfg.kind == "hnsw":
        hnsw: Any = faiss.downcast_index(index)
        hnsw.hnsw.efSearch = cfg.ef_search


def index_to_gpu(index: Any) -> Any:
    """Copy a CPU index to GPU 0 (its ``StandardGpuResources`` kept alive on the returned index)."""
    res = faiss.StandardGpuResources()
    gpu_index: Any = faiss.index_cpu_to_gpu(res, 0, index)
    gpu_index.kosparse_resources = res  # the resources must live as long as the index
    return gpu_index


def build_index(embeddings: np.ndarray, cfg: IndexConfig | None = None) -> Any:
    """Build an inner-product index over ``embeddings`` (rows are searched by their row number).

    Args:
        embeddings: ``(N, d)`` float16 or float32 array or memmap, L2-normalised rows.
        cfg: Index settings.

    Returns:
        A trained, filled ``faiss.Index`` (a GPU index when ``use_gpu`` resolves to true and the
        kind supports it).

    Raises:
        ValueError: If ``embeddings`` is not a non-empty 2-d array.
    """
    cfg = cfg or IndexConfig()
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (N, d) array, got shape {embeddings.shape}")
    n, d = embeddings.shape
    if cfg.kind == "flat":
        index: Any = faiss.IndexFlatIP(d)
    elif cfg.kind == "ivf":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, resolve_nlist(n, cfg), faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
    if cfg.kind != "hnsw" and resolve_use_gpu(cfg.use_gpu, "index"):
        index = index_to_gpu(index)
    if cfg.kind == "ivf":
        rng = np.random.default_rng(cfg.seed)
        sample = np.sort(rng.choice(n, size=min(n, cfg.train_size), replace=False))
        index.train(_f32(embeddings[sample]))
    for start in range(0, n, cfg.add_batch_size):
        index.add(_f32(embeddings[start:start + cfg.add_batch_size]))
    _set_search_params(index, cfg)
    return index


def save_index(index: Any, path: Path) -> None:
    """Write an index (a GPU index is copied to the CPU first), atomically.

    Args:
        index: A ``faiss.Index``.
        path: Output file.
    """
    if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
        index = faiss.index_gpu_to_cpu(index)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def load_index(path: Path, cfg: IndexConfig | None = None) -> Any:
    """Read an index written by :func:`save_index`.

    Args:
        path: The index file.
        cfg: When given, its search parameters (``nprobe``, ``ef_search``) are applied and the
            index is moved to the GPU if ``use_gpu`` resolves to true.

    Returns:
        The ``faiss.Index``.
    """
    index = faiss.read_index(str(path))
    if cfg is not None:
        if cfg.kind != "hnsw" and resolve_use_gpu(cfg.use_gpu, "index"):
            index = index_to_gpu(index)
        _set_search_params(index, cfg)
    return index


def search(index: Any, queries: np.ndarray, k: int, batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner-product search in batches.

    Args:
        index: A ``faiss.Index``.
        queries: ``(Q, d)`` float16/float32 array or memmap.
        k: Neighbours per query.
        batch_size: Queries per faiss call.

    Returns:
        ``(scores, ids)``: ``(Q, k)`` float32 and int64, best first; ids are row numbers of the
        indexed embeddings, ``-1`` where fewer than ``k`` results exist.

    Raises:
        ValueError: If ``k`` is not positive or the dimensions differ.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if queries.ndim != 2 or queries.shape[1] != index.d:
        raise ValueError(f"queries must be (Q, {index.d}), got {queries.shape}")
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        s, i = index.search(_f32(queries[start:start + batch_size]), k)
        scores[start:start + len(s)] = s
        ids[start:start + len(i)] = i
    return scores, ids


def exact_search(embeddings: np.ndarray, queries: np.ndarray, k: int,
                 batch_size: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner product by streaming over ``embeddings`` in numpy (a reference).

    Args:
        embeddings: ``(N, d)`` array or memmap.
        queries: ``(Q, d)`` array (kept small: ``Q x batch_size`` scores are held at once).
        k: Neighbours per query.
        batch_size: Rows of ``embeddings`` per step.

    Returns:
        ``(scores, ids)`` as in :func:`search`, ties broken by the lower row number.
    """
    q = _f32(queries)
    k_eff = min(k, len(embeddings))
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, len(embeddings), batch_size):
        s = q @ _f32(embeddings[start:start + batch_size]).T
        cand_s = np.concatenate([best_s, s], axis=1)
        rows = np.broadcast_to(np.arange(start, start + s.shape[1]), s.shape)
        cand_i = np.concatenate([best_i, rows], axis=1)
        order = np.lexsort((cand_i, -cand_s), axis=1)[:, :k_eff]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    if k_eff < k:
        best_s = np.pad(best_s, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
        best_i = np.pad(best_i, ((0, 0), (0, k - k_eff)), constant_values=-1)
    return best_s.astype(np.float32), best_i


def recall_at_k(index: Any, embeddings: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Mean fraction of the exact top-``k`` ids that the index returns (ANN quality).

    Args:
        index: The index built over ``embeddings``.
        embeddings: The indexed vectors.
        queries: A small query sample.
        k: Cut-off.

    Returns:
        Recall@k in ``[0, 1]``.
    """
    _, exact = exact_search(embeddings, queries, k)
    _, got = search(index, queries, k)
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(exact, got, strict=True)]
    return float(np.sum(hits) / exact.size)


def index_report(index: Any, embeddings: np.ndarray, cfg: IndexConfig, build_seconds: float,
                 sample: int = 256, k: int = 10) -> dict[str, Any]:
    """Summary of a built index with its recall@k against exact search on sampled rows.

    Args:
        index: The built index.
        embeddings: The indexed vectors.
        cfg: Settings used.
        build_seconds: Build time.
        sample: Rows used as queries (seeded by ``cfg.seed``).
        k: Cut-off of the recall check.

    Returns:
        A JSON-ready dict.
    """
    rng = np.random.default_rng(cfg.seed)
    rows = np.sort(rng.choice(len(embeddings), size=min(sample, len(embeddings)), replace=False))
    t0 = time.perf_counter()
    recall = recall_at_k(index, embeddings, _f32(embeddings[rows]), k)
    return {"kind": cfg.kind, "ntotal": int(index.ntotal), "dim": int(index.d),
            "nlist": resolve_nlist(len(embeddings), cfg) if cfg.kind == "ivf" else None,
            "nprobe": cfg.nprobe if cfg.kind == "ivf" else None,
            "ef_search": cfg.ef_search if cfg.kind == "hnsw" else None,
            "gpu": "Gpu" in type(index).__name__, "build_seconds": round(build_seconds, 3),
            f"recall_at_{k}": round(recall, 4), "recall_queries": len(rows),
            "recall_seconds": round(time.perf_counter() - t0, 3)}
