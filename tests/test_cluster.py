"""Tests for kosparse.cluster: seeded spherical k-means, assignments, automatic cluster count."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("faiss")

from kosparse.cluster import ClusterConfig, assign, kmeans, resolve_n_clusters  # noqa: E402
from kosparse.config import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _blobs(n: int, d: int, k: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d))
    labels = rng.integers(0, k, n)
    x = centers[labels] + noise * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    return _blobs(3000, 32, 12, noise=0.3, seed=0)[0]


def test_deterministic_with_seed(points: np.ndarray) -> None:
    cfg = ClusterConfig(n_clusters=12, niter=10, seed=7, use_gpu=False)
    a = kmeans(points, cfg)
    b = kmeans(points, cfg)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    other = kmeans(points, ClusterConfig(n_clusters=12, niter=10, seed=8, use_gpu=False))
    assert not np.array_equal(a[1], other[1])


def test_ids_are_the_nearest_centroid(points: np.ndarray) -> None:
    ids, centroids, dist = kmeans(points, ClusterConfig(n_clusters=9, niter=8, use_gpu=False))
    assert ids.dtype == np.int32 and centroids.dtype == np.float32 and dist.dtype == np.float32
    assert ids.shape == (3000,) and centroids.shape == (9, 32) and dist.shape == (3000,)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)  # spherical
    sq = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(ids, sq.argmin(1))
    np.testing.assert_allclose(dist, sq.min(1), atol=1e-5)


def test_recovers_separated_blobs() -> None:
    x, labels = _blobs(1200, 16, 6, noise=0.05, seed=1)
    ids, _, _ = kmeans(x, ClusterConfig(n_clusters=6, niter=20, seed=3, use_gpu=False))
    # Each true blob lands in a single cluster (a clustering that may permute labels).
    for blob in range(6):
        assert len(set(ids[labels == blob].tolist())) == 1


def test_training_sample_and_float16_memmap(points: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "e.npy", points.astype(np.float16))
    mm = np.load(tmp_path / "e.npy", mmap_mode="r")
    cfg = ClusterConfig(
        n_clusters=4, niter=5, max_points_per_centroid=39, assign_batch_size=500, use_gpu=False
    )
    ids, centroids, dist = kmeans(mm, cfg)  # 4 * 39 = 156 training points out of 3000
    again = kmeans(mm, cfg)
    np.testing.assert_array_equal(ids, again[0])
    ref_ids, ref_dist = assign(mm.astype(np.float32), centroids)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-6)


def test_auto_cluster_count() -> None:
    cfg = ClusterConfig()
    assert resolve_n_clusters(10_000, cfg) == 100
    assert resolve_n_clusters(10_000_000, cfg) == 3162
    assert resolve_n_clusters(10_000_000, ClusterConfig(max_clusters=1000)) == 1000
    assert resolve_n_clusters(1000, cfg) == 25  # 1000 // 39: faiss wants >= 39 points per centroid
    assert resolve_n_clusters(5, cfg) == 1
    with pytest.raises(ValueError, match="exceeds"):
        resolve_n_clusters(5, ClusterConfig(n_clusters=6))


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="cluster.n_clusters"):
        ClusterConfig(n_clusters="many")
    with pytest.raises(ConfigError, match="cluster.n_clusters"):
        ClusterConfig(n_clusters=0)
    with pytest.raises(ConfigError, match="cluster.backend"):
        ClusterConfig(backend="sklearn")
    with pytest.raises(ValueError, match="non-empty"):
        kmeans(np.zeros((0, 4), np.float32))


def test_cluster_stage(points: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stages/cluster.py reads params.yaml and writes ids, centroids, distances and a report."""
    emb = tmp_path / "data" / "neural_sparse_training" / "embeddings"
    emb.mkdir(parents=True)
    np.save(emb / "document_embeddings.npy", points.astype(np.float16))
    params = {"cluster": {"n_clusters": "auto", "niter": 5, "seed": 1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert runpy.run_path(str(ROOT / "stages" / "cluster.py"))["main"]() == 0
    ids = np.load(emb / "cluster_ids.npy")
    assert ids.shape == (3000,) and ids.dtype == np.int32
    assert np.load(emb / "centroids.npy").shape == (55, 32)  # round(sqrt(3000))
    assert np.load(emb / "cluster_distances.npy").dtype == np.float32
    report = json.loads((emb / "cluster_report.json").read_text())
    assert report["n_clusters"] == 55 and report["n_points"] == 3000
