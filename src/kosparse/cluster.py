"""Cluster: seeded spherical k-means over the document embeddings (faiss).

Clusters group topically close passages (for cluster-aware batching and negative sampling
downstream). The vectors are L2-normalised, so k-means is spherical: centroids are renormalised
after every iteration and points are assigned by inner product, which for unit centroids is the
same as the nearest centroid in Euclidean distance.

Training uses a seeded sample of at most ``max_points_per_centroid`` points per centroid (faiss's
own rule) drawn here, so only that sample is held in float32; assignment then streams over the
(float16 memmap) embeddings in batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kosparse.config import require
from kosparse.index import faiss, index_to_gpu, resolve_use_gpu

__all__ = ["ClusterConfig", "assign", "cluster_report", "kmeans", "resolve_n_clusters"]


@dataclass
class ClusterConfig:
    """The ``cluster`` section.

    Attributes:
        n_clusters: A number, or ``auto``: ``round(sqrt(N))`` capped by ``max_clusters`` and by
            ``N // 39`` (faiss's minimum of 39 training points per centroid), at least 1.
        max_clusters: Cap of the automatic choice.
        niter: k-means iterations.
        seed: Seed of the training sample and of faiss's initialisation.
        backend: ``faiss`` (the only backend).
        max_points_per_centroid: Training sample size per centroid.
        use_gpu: ``auto``, ``true`` or ``false``.
        assign_batch_size: Vectors assigned per step.
    """

    n_clusters: int | str = "auto"
    max_clusters: int = 4096
    niter: int = 20
    seed: int = 1234
    backend: str = "faiss"
    max_points_per_centroid: int = 256
    use_gpu: bool | str = "auto"
    assign_batch_size: int = 65_536

    def __post_init__(self) -> None:
        checks = [
            (self.n_clusters == "auto" or (isinstance(self.n_clusters, int) and self.n_clusters > 0),
             "cluster.n_clusters", f"must be a positive integer or 'auto', got {self.n_clusters!r}"),
            (self.max_clusters > 0 and self.niter > 0, "cluster.max_clusters",
             "max_clusters and niter must be > 0"),
            (self.backend == "faiss", "cluster.backend", f"unknown backend {self.backend!r}"),
            (self.max_points_per_centroid >= 39, "cluster.max_points_per_centroid", "must be >= 39"),
            (self.use_gpu in (True, False, "auto"), "cluster.use_gpu",
             f"must be auto/true/false, got {self.use_gpu!r}"),
            (self.assign_batch_size > 0, "cluster.assign_batch_size", "must be positive"),
        ]
        for ok, key, message in checks:
            require(ok, key, message)


def resolve_n_clusters(n: int, cfg: ClusterConfig) -> int:
    """The number of clusters for ``n`` points.

    Args:
        n: Number of points.
        cfg: Cluster settings.

    Returns:
        The cluster count.

    Raises:
        ValueError: If an explicit ``n_clusters`` exceeds ``n``.
    """
    if cfg.n_clusters == "auto":
        return max(1, min(round(math.sqrt(n)), cfg.max_clusters, n // 39))
    k = int(cfg.n_clusters)
    if k > n:
        raise ValueError(f"cluster.n_clusters={k} exceeds the number of points ({n})")
    return k


def assign(embeddings: np.ndarray, centroids: np.ndarray, batch_size: int = 65_536,
           use_gpu: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Assign each vector to its highest-inner-product centroid.

    Args:
        embeddings: ``(N, d)`` array or memmap.
        centroids: ``(k, d)`` float32 (unit norm for spherical k-means).
        batch_size: Vectors per step.
        use_gpu: Search the centroids on the GPU.

    Returns:
        ``(cluster_ids, distances)``: int32 ids and float32 squared Euclidean distances
        ``|x - c|^2`` to the assigned centroid.
    """
    cents = np.ascontiguousarray(centroids, dtype=np.float32)
    index: Any = faiss.IndexFlatIP(cents.shape[1])
    index.add(cents)
    if use_gpu:
        index = index_to_gpu(index)
    c_norm2 = (cents.astype(np.float64) ** 2).sum(1)
    ids = np.empty(len(embeddings), dtype=np.int32)
    dist = np.empty(len(embeddings), dtype=np.float32)
    for start in range(0, len(embeddings), batch_size):
        x = np.ascontiguousarray(embeddings[start:start + batch_size], dtype=np.float32)
        ip, nearest = index.search(x, 1)
        j = nearest[:, 0]
        d2 = (x.astype(np.float64) ** 2).sum(1) + c_norm2[j] - 2.0 * ip[:, 0]
        ids[start:start + len(x)] = j
        dist[start:start + len(x)] = np.maximum(d2, 0.0)
    return ids, dist


def kmeans(embeddings: np.ndarray,
           cfg: ClusterConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded spherical k-means.

    Args:
        embeddings: ``(N, d)`` L2-normalised float16/float32 array or memmap.
        cfg: Cluster settings.

    Returns:
        ``(cluster_ids, centroids, distances)``: ``(N,)`` int32, ``(k, d)`` float32 unit-norm
        centroids, and ``(N,)`` float32 squared Euclidean distances to the own centroid. The same
        input, seed and thread count give the same result.

    Raises:
        ValueError: If ``embeddings`` is not a non-empty 2-d array.
    """
    cfg = cfg or ClusterConfig()
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (N, d) array, got shape {embeddings.shape}")
    n, d = embeddings.shape
    k = resolve_n_clusters(n, cfg)
    gpu = resolve_use_gpu(cfg.use_gpu, "cluster")
    rng = np.random.default_rng(cfg.seed)
    n_train = min(n, k * cfg.max_points_per_centroid)
    rows = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else slice(None)
    sample = np.ascontiguousarray(embeddings[rows], dtype=np.float32)
    km = faiss.Kmeans(d, k, niter=cfg.niter, seed=cfg.seed, spherical=True, verbose=False,
                      max_points_per_centroid=cfg.max_points_per_centroid, gpu=gpu)
    km.train(sample)
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    ids, dist = assign(embeddings, centroids, cfg.assign_batch_size, use_gpu=gpu)
    return ids, centroids, dist


def cluster_report(cluster_ids: np.ndarray, distances: np.ndarray, k: int) -> dict[str, Any]:
    """Cluster size and distance statistics.

    Args:
        cluster_ids: ``(N,)`` assignments.
        distances: ``(N,)`` squared distances to the own centroid.
        k: Number of clusters.

    Returns:
        A JSON-ready dict.
    """
    sizes = np.bincount(cluster_ids, minlength=k)
    return {"n_points": int(len(cluster_ids)), "n_clusters": int(k),
            "empty_clusters": int((sizes == 0).sum()), "size_min": int(sizes.min()),
            "size_median": float(np.median(sizes)), "size_max": int(sizes.max()),
            "mean_sq_distance": float(distances.mean()) if len(distances) else None}
