"""Tests for kosparse.index: exact flat search, ANN recall, persistence, the faiss install check."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("faiss")

from kosparse.config import ConfigError  # noqa: E402
from kosparse.index import (  # noqa: E402
    IndexConfig,
    build_index,
    check_faiss_distributions,
    exact_search,
    load_index,
    recall_at_k,
    resolve_nlist,
    save_index,
    search,
)

ROOT = Path(__file__).resolve().parents[1]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, d: int, centers: int, seed: int, noise: float = 0.2) -> np.ndarray:
    """Normalised points around shared random centres: closer to real embeddings than uniform noise."""
    c = _unit(np.random.default_rng(99).standard_normal((centers, d)))
    rng = np.random.default_rng(seed)
    return _unit(c[rng.integers(0, centers, n)] + noise * rng.standard_normal((n, d)))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = _clustered(4000, 48, 40, seed=0)
    q = _clustered(200, 48, 40, seed=1)
    return x, q


def _brute(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q @ x.T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, ids, axis=1), ids


def test_flat_is_exact(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    index = build_index(x, IndexConfig(kind="flat", use_gpu=False))
    scores, ids = search(index, q, 10, batch_size=64)
    exp_scores, exp_ids = _brute(x, q, 10)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (200, 10)
    np.testing.assert_array_equal(ids, exp_ids)
    np.testing.assert_allclose(scores, exp_scores, atol=1e-5)


def test_float16_memmap_input(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, q = data
    np.save(tmp_path / "e.npy", x.astype(np.float16))
    mm = np.load(tmp_path / "e.npy", mmap_mode="r")
    index = build_index(mm, IndexConfig(kind="flat", use_gpu=False, add_batch_size=999))
    assert index.ntotal == len(x)
    _, ids = search(index, q.astype(np.float16), 5)
    _, exp = _brute(mm.astype(np.float32), q.astype(np.float16).astype(np.float32), 5)
    np.testing.assert_array_equal(ids[:, 0], exp[:, 0])


@pytest.mark.parametrize(
    "cfg",
    [
        IndexConfig(kind="ivf", nprobe=16, use_gpu=False),
        IndexConfig(kind="hnsw", hnsw_m=16, ef_search=64, use_gpu=False),
    ],
    ids=["ivf", "hnsw"],
)
def test_ann_recall(data: tuple[np.ndarray, np.ndarray], cfg: IndexConfig) -> None:
    x, q = data
    index = build_index(x, cfg)
    assert recall_at_k(index, x, q, 10) >= 0.9


def test_ivf_nlist_and_training_sample(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = data
    assert resolve_nlist(4000, IndexConfig()) == min(int(4 * np.sqrt(4000)), 4000 // 39) == 102
    assert resolve_nlist(10, IndexConfig()) == 1
    assert resolve_nlist(50, IndexConfig(nlist=500)) == 50
    index = build_index(x, IndexConfig(kind="ivf", nlist=20, nprobe=50, train_size=1000, use_gpu=False))
    assert index.nlist == 20 and index.nprobe == 20  # nprobe is capped at nlist
    assert recall_at_k(index, x, x[:50], 10) == 1.0  # every list probed: exact


def test_save_load_round_trip(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    x, q = data
    cfg = IndexConfig(kind="ivf", nprobe=8, use_gpu=False)
    index = build_index(x, cfg)
    save_index(index, tmp_path / "sub" / "faiss_index.bin")
    loaded = load_index(
        tmp_path / "sub" / "faiss_index.bin", IndexConfig(kind="ivf", nprobe=4, use_gpu=False)
    )
    assert loaded.ntotal == len(x) and loaded.nprobe == 4
    loaded.nprobe = 8
    np.testing.assert_array_equal(search(loaded, q, 5)[1], search(index, q, 5)[1])


def test_exact_search_reference(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    scores, ids = exact_search(x, q[:20], 7, batch_size=300)
    exp_scores, exp_ids = _brute(x, q[:20], 7)
    np.testing.assert_array_equal(ids, exp_ids)
    np.testing.assert_allclose(scores, exp_scores, atol=1e-5)


def test_more_neighbours_than_vectors() -> None:
    x = _unit(np.random.default_rng(3).standard_normal((3, 8)))
    index = build_index(x, IndexConfig(use_gpu=False))
    _, ids = search(index, x[:1], 5)
    assert ids[0, 0] == 0 and (ids[0, 3:] == -1).all()
    _, exact = exact_search(x, x[:1], 5)
    assert (exact[0, 3:] == -1).all()


def test_bad_inputs() -> None:
    x = _unit(np.random.default_rng(4).standard_normal((10, 8)))
    index = build_index(x, IndexConfig(use_gpu=False))
    with pytest.raises(ValueError, match="queries must be"):
        search(index, np.zeros((2, 9), np.float32), 3)
    with pytest.raises(ValueError, match="k must be positive"):
        search(index, x, 0)
    with pytest.raises(ValueError, match="non-empty"):
        build_index(np.zeros((0, 8), np.float32), IndexConfig())
    with pytest.raises(ConfigError, match="index.kind"):
        IndexConfig(kind="pq")
    with pytest.raises(ConfigError, match="index.use_gpu"):
        IndexConfig(use_gpu="maybe")


def test_both_faiss_distributions_is_a_clear_error() -> None:
    check_faiss_distributions(["numpy", "faiss-cpu"])
    check_faiss_distributions(["faiss-gpu-cu12"])
    with pytest.raises(ImportError, match=r"faiss-cpu.*faiss-gpu-cu12.*pip uninstall"):
        check_faiss_distributions(["faiss_cpu", "faiss-gpu-cu12"])
    with pytest.raises(ImportError, match="clash"):
        check_faiss_distributions(["Faiss-CPU", "faiss-gpu"])
    check_faiss_distributions()  # this environment is sane


def test_index_stage(
    data: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stages/index.py reads params.yaml, writes faiss_index.bin and index_report.json."""
    x, q = data
    emb = tmp_path / "data" / "neural_sparse_training" / "embeddings"
    emb.mkdir(parents=True)
    np.save(emb / "document_embeddings.npy", x.astype(np.float16))
    params = {"index": {"kind": "hnsw", "hnsw_m": 16, "use_gpu": "auto"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert runpy.run_path(str(ROOT / "stages" / "index.py"))["main"]() == 0
    index = load_index(emb / "faiss_index.bin")
    assert index.ntotal == len(x)
    report = json.loads((emb / "index_report.json").read_text())
    assert report["kind"] == "hnsw" and report["recall_at_10"] >= 0.9


@pytest.mark.gpu
def test_gpu_flat_matches_cpu(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    from kosparse.index import gpu_available

    if not gpu_available():
        pytest.skip("faiss has no GPU support here or sees no GPU")
    x, q = data
    gpu = build_index(x, IndexConfig(kind="flat", use_gpu=True))
    np.testing.assert_array_equal(search(gpu, q, 10)[1], _brute(x, q, 10)[1])
    save_index(gpu, tmp_path / "i.bin")
    assert load_index(tmp_path / "i.bin").ntotal == len(x)
