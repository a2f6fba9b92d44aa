"""Tests for kosparse.mine on hand-built embeddings whose negatives can be worked out by hand.

The fixture: query ``q = e0`` and passages ``s * e0 + sqrt(1 - s^2) * e_j`` with distinct ``e_j``, so a
passage's teacher similarity is exactly ``s``. The positive ``P0`` has ``s = 0.90``; the relative
margin 0.05 puts the false-negative threshold at ``0.855``.

====  =====  =====  ==========================================================
id     sim   clu    role
====  =====  =====  ==========================================================
P0    0.90   0      positive (document A)
P4    0.88   1      above the margin threshold: a likely false negative
P1    0.85   0      same document A as the positive
P2    0.84   0      cosine 0.9925 to P0: near duplicate
P3    0.83   0      same text as P0: duplicate text
P5    0.80   1      hard
P12   0.79   1      same text as P5: repeated text
P6-P10 .78-.70 1    hard (P10 only fills a row that lacks a related passage)
R1    0.30   0      the only valid related passage (cluster of the positive)
E1    0.10   2      the only valid easy negative (outside window and cluster)
====  =====  =====  ==========================================================
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kosparse.chunk import PASSAGE_SCHEMA
from kosparse.config import ConfigError, to_dataclass
from kosparse.mine import (
    BANDS,
    DROP_REASONS,
    MineConfig,
    MiningInputs,
    band_scores,
    draw_uniform,
    mine,
    mine_arrays,
    query_keys,
    text_hash,
    text_hashes,
)

DIM = 16
# id: (sim, basis direction, cluster, document, text)
PASSAGES: dict[str, tuple[float, int, int, str, str]] = {
    "P0": (0.90, 1, 0, "A", "positive text"),
    "P1": (0.85, 14, 0, "A", "same document"),
    "P2": (0.84, 1, 0, "B", "near duplicate"),
    "P3": (0.83, 3, 0, "C", "Positive   TEXT"),  # normalises to P0's text
    "P4": (0.88, 15, 1, "D", "false negative"),
    "P5": (0.80, 4, 1, "E", "hard five"),
    "P6": (0.78, 5, 1, "F", "hard six"),
    "P7": (0.76, 6, 1, "G", "hard seven"),
    "P8": (0.74, 7, 1, "H", "hard eight"),
    "P9": (0.72, 8, 1, "I", "hard nine"),
    "P10": (0.70, 12, 1, "J", "hard ten"),
    "P12": (0.79, 9, 1, "K", "hard five"),  # repeats P5's text
    "R1": (0.30, 10, 0, "L", "related one"),
    "E1": (0.10, 11, 2, "M", "easy one"),
}
BASE = {"top_k": 11, "draws": 64, "sim_range": [0.0, 1.0]}


def vec(sim: float, direction: int) -> np.ndarray:
    """Unit vector with ``e0`` component ``sim`` and the rest along ``e_direction``."""
    v = np.zeros(DIM, np.float32)
    v[0] = sim
    v[direction] += np.sqrt(1.0 - sim * sim)
    return v / np.linalg.norm(v)


def build(drop: tuple[str, ...] = (),
          **changes: tuple[float, int, int, str, str]) -> tuple[list[str], MiningInputs]:
    """The fixture's ids and mining inputs for the single query ``q = e0`` about ``P0``."""
    table = {k: v for k, v in {**PASSAGES, **changes}.items() if k not in drop}
    ids = list(table)
    emb = np.stack([vec(s, d) for s, d, _, _, _ in table.values()])
    cluster = np.array([c for _, _, c, _, _ in table.values()], np.int64)
    docs = {d: i for i, d in enumerate(sorted({d for _, _, _, d, _ in table.values()}))}
    group = np.array([docs[d] for _, _, _, d, _ in table.values()], np.int64)
    hashes = text_hashes([t for *_, t in table.values()])
    centroids = np.stack([emb[cluster == c].mean(0) if (cluster == c).any() else np.eye(DIM)[0]
                          for c in range(3)]).astype(np.float32)
    q = np.eye(DIM, dtype=np.float32)[:1]
    pos = np.array([ids.index("P0")])
    return ids, MiningInputs(doc_emb=emb, query_emb=q, positive=pos, doc_group=group, text_hash=hashes,
                             positive_hash=hashes[pos], cluster=cluster, centroids=centroids,
                             query_key=query_keys(["q0"], 0))


def cfg(**kw: Any) -> MineConfig:
    """A config on the fixture's settings (top-k window of 11, sims mapped from [0, 1])."""
    return MineConfig(**{**BASE, "device": "cpu", **kw})


def row(ids: list[str], inputs: MiningInputs, config: MineConfig) -> tuple[list[str], list[str], list[float]]:
    """Mine the fixture's query: (passage ids, band names, scores)."""
    res = mine_arrays(inputs, config)
    assert res.kept[0], f"dropped: {DROP_REASONS[res.reason[0] - 1]}"
    return ([ids[i] for i in res.docs[0]], [BANDS[b] for b in res.bands[0]], res.scores[0].tolist())


def test_expected_row_by_hand() -> None:
    ids, inputs = build()
    docs, bands, scores = row(ids, inputs, cfg())
    assert docs == ["P0", "P5", "P6", "P7", "P8", "P9", "R1", "E1"]
    assert bands == ["positive"] + ["hard"] * 5 + ["related", "easy"]
    # hard: 3.5 + 5.5 * sim; easy: 0 + 1 * sim; related: 1.5 + 1.5 * cos(R1, centroid of cluster 0)
    c0 = inputs.centroids[0] / np.linalg.norm(inputs.centroids[0])
    related = 1.5 + 1.5 * float(inputs.doc_emb[ids.index("R1")] @ c0)
    assert scores == pytest.approx([10.0, 7.9, 7.79, 7.68, 7.57, 7.46, related, 0.1], abs=1e-5)


def test_window_filter_counts() -> None:
    ids, inputs = build()
    res = mine_arrays(inputs, cfg())
    assert res.window_filters == {"missing": 0, "same_document": 1, "duplicate_text": 1, "near_duplicate": 1,
                                  "relative_margin": 1, "repeated_text": 1}
    assert res.hard_counts == {5: 1}


@pytest.mark.parametrize(("change", "admitted"), [
    ({"exclude_same_document": False}, ["P1"]),
    ({"duplicate_cosine": None}, ["P2"]),
    ({"relative_margin": None}, ["P4"]),
    ({"dedupe_text": False}, ["P3", "P12"]),  # P0's text, and P5's repeated
])
def test_each_exclusion_rule(change: dict[str, Any], admitted: list[str]) -> None:
    """Switching one filter off admits exactly the passages it removed, at their rank by similarity."""
    ids, inputs = build()
    docs, bands, _ = row(ids, inputs, cfg(**change))
    hard = [d for d, b in zip(docs, bands, strict=True) if b == "hard"]
    by_sim = sorted(["P5", "P6", "P7", "P8", "P9", *admitted], key=lambda p: -PASSAGES[p][0])
    assert hard == by_sim[:5]


def test_repeated_text_rule() -> None:
    """With text dedupe off, P12 (P5's text) is admitted too; with it on, only the first of them is."""
    ids, inputs = build()
    docs, _, _ = row(ids, inputs, cfg(dedupe_text=False))
    assert "P12" in docs and "P5" in docs
    docs, _, _ = row(ids, inputs, cfg())
    assert "P12" not in docs


def test_hard_negatives_fill_a_row_without_related() -> None:
    ids, inputs = build(drop=("R1",))
    docs, bands, _ = row(ids, inputs, cfg())
    assert docs == ["P0", "P5", "P6", "P7", "P8", "P9", "P10", "E1"]
    assert bands.count("hard") == 6 and "related" not in bands
    res = mine_arrays(inputs, cfg())
    assert res.related_short == 1 and res.easy_short == 0


def test_easy_fills_when_hard_and_related_run_short() -> None:
    """No related passage and only 5 hard negatives in the window: a second easy negative fills the row."""
    ids, inputs = build(drop=("R1",), E2=(0.05, 13, 2, "N", "easy two"))
    docs, bands, scores = row(ids, inputs, cfg(top_k=10))
    assert docs[:6] == ["P0", "P5", "P6", "P7", "P8", "P9"]
    assert bands[6:] == ["easy", "easy"] and set(docs[6:]) <= {"P10", "E1", "E2"}
    assert scores[6] > scores[7]


def test_drop_too_few_hard_negatives() -> None:
    ids, inputs = build()
    res = mine_arrays(inputs, cfg(top_k=10, docs_per_query=9, hard_min=6))
    assert not res.kept[0]
    assert DROP_REASONS[res.reason[0] - 1] == "too_few_hard_negatives"
    assert (res.docs[0] == -1).all()


def test_drop_too_few_candidates() -> None:
    ids, inputs = build(drop=("R1", "E1", "P10"))
    res = mine_arrays(inputs, cfg(top_k=10))
    assert DROP_REASONS[res.reason[0] - 1] == "too_few_candidates"


def test_related_score_teacher_mode() -> None:
    ids, inputs = build()
    _, _, scores = row(ids, inputs, cfg(related_score="teacher"))
    assert scores[6] == pytest.approx(1.5 + 1.5 * 0.30, abs=1e-5)


def test_automatic_sim_range_spans_the_selected_negatives() -> None:
    ids, inputs = build()
    res = mine_arrays(inputs, cfg(sim_range=None, related_score="teacher"))
    assert res.sim_range == pytest.approx((0.10, 0.80), abs=1e-6)
    expected = [10.0, 9.0, 8.843, 8.686, 8.529, 8.371, 1.5 + 1.5 * 2 / 7, 0.0]
    assert res.scores[0].tolist() == pytest.approx(expected, abs=1e-3)


# --- properties on random, structured data -----------------------------------------------------------

def random_inputs(n: int = 600, n_q: int = 120, dim: int = 32, seed: int = 0) -> MiningInputs:
    """Topic-structured unit vectors; documents of 1-4 passages; queries near their positive."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((12, dim)).astype(np.float32)
    doc_of = np.repeat(np.arange(n), rng.integers(1, 5, n))[:n]
    doc_topic = rng.integers(0, 12, doc_of.max() + 1)
    emb = topics[doc_topic[doc_of]] + 0.8 * rng.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    pos = rng.choice(n, n_q, replace=False)
    q = emb[pos] + 0.3 * rng.standard_normal((n_q, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    cluster = doc_topic[doc_of]
    hashes = text_hashes([f"passage {i}" for i in range(n)])
    return MiningInputs(doc_emb=emb.astype(np.float16), query_emb=q.astype(np.float16), positive=pos,
                        doc_group=doc_of, text_hash=hashes, positive_hash=hashes[pos], cluster=cluster,
                        centroids=np.stack([emb[cluster == c].mean(0) for c in range(12)]),
                        query_key=query_keys([f"q{i}" for i in range(n_q)], 0))


@pytest.fixture(scope="module")
def random_result() -> tuple[MiningInputs, Any]:
    inputs = random_inputs()
    return inputs, mine_arrays(inputs, MineConfig(device="cpu", related_score="teacher"))


def test_band_order_and_monotone_scores(random_result: tuple[MiningInputs, Any]) -> None:
    inputs, res = random_result
    kept = res.kept
    assert kept.sum() > 100
    scores, bands, sims = res.scores[kept], res.bands[kept], res.teacher_sims[kept]
    assert (np.diff(scores, axis=1) < 0).all(), "positive > hard > related > easy, strictly, in every row"
    assert (np.diff(bands, axis=1) >= 0).all() and (bands[:, 0] == 0).all() and (scores[:, 0] == 10.0).all()
    for b in (1, 2, 3):  # one monotone map: within a band, higher teacher similarity, higher score
        s, x = scores[bands == b], sims[bands == b]
        order = np.argsort(x, kind="stable")
        assert (np.diff(s[order]) >= -1e-9).all()
    assert (scores[bands == 1] >= 3.5).all() and (scores[bands == 3] <= 1.0).all()


def test_rows_respect_the_exclusions(random_result: tuple[MiningInputs, Any]) -> None:
    inputs, res = random_result
    for i in np.flatnonzero(res.kept):
        docs, bands = res.docs[i], res.bands[i]
        negs = docs[1:]
        assert len(set(docs.tolist())) == len(docs)
        assert not (inputs.doc_group[negs] == inputs.doc_group[docs[0]]).any()
        assert ((inputs.cluster[docs[bands == 2]]) == inputs.cluster[docs[0]]).all()
        assert ((inputs.cluster[docs[bands == 3]]) != inputs.cluster[docs[0]]).all()


def test_per_query_determinism() -> None:
    """Same rows whatever the batch size or the order and company of the queries."""
    inputs = random_inputs()
    a = mine_arrays(inputs, MineConfig(device="cpu", sim_range=[0.0, 1.0], batch_size=1024))
    perm = np.random.default_rng(1).permutation(len(inputs.query_emb))[:50]
    sub = MiningInputs(**{**inputs.__dict__, "query_emb": inputs.query_emb[perm],
                          "positive": inputs.positive[perm], "positive_hash": inputs.positive_hash[perm],
                          "query_key": inputs.query_key[perm]})
    b = mine_arrays(sub, MineConfig(device="cpu", sim_range=[0.0, 1.0], batch_size=7))
    np.testing.assert_array_equal(a.docs[perm], b.docs)
    np.testing.assert_array_equal(a.scores[perm], b.scores)
    c = mine_arrays(inputs, MineConfig(device="cpu", sim_range=[0.0, 1.0], seed=1))
    d = mine_arrays(inputs, MineConfig(device="cpu", sim_range=[0.0, 1.0], seed=1))
    np.testing.assert_array_equal(c.docs, d.docs)


def test_draws_are_a_pure_function_of_key_salt_and_index() -> None:
    keys = query_keys(["a", "b", "c"], 7)
    np.testing.assert_array_equal(draw_uniform(keys, 1, 5)[1], draw_uniform(keys[1:2], 1, 5)[0])
    assert not np.array_equal(draw_uniform(keys, 1, 5), draw_uniform(keys, 2, 5))
    assert not np.array_equal(query_keys(["a"], 7), query_keys(["a"], 8))


def test_same_negatives_as_sentence_transformers() -> None:
    """With only ST's filters (positive, relative margin), our hard sets equal mine_hard_negatives'."""
    torch = pytest.importorskip("torch")
    datasets = pytest.importorskip("datasets")
    st_util = pytest.importorskip("sentence_transformers.util")
    inputs = random_inputs(n=400, n_q=60, seed=3)
    emb = inputs.doc_emb.astype(np.float32)
    q = inputs.query_emb.astype(np.float32)
    corpus = [f"passage {i}" for i in range(len(emb))]
    queries = [f"query {i}" for i in range(len(q))]
    row_of = {t: i for i, t in enumerate(corpus)}

    class Lookup:  # the embeddings are given; ST's code path from similarity on is its own
        device = torch.device("cpu")
        model_card_data = type("Card", (), {"base_model": None})()

        def encode_document(self, texts: list[str], **_: Any) -> np.ndarray:
            return emb[[row_of[t] for t in texts]]

        def encode_query(self, texts: list[str], **_: Any) -> np.ndarray:
            return q[[queries.index(t) for t in texts]]

        def similarity(self, a: Any, b: Any) -> Any:
            return torch.as_tensor(a) @ torch.as_tensor(b).T

        def similarity_pairwise(self, a: Any, b: Any) -> Any:
            return (torch.as_tensor(a) * torch.as_tensor(b)).sum(-1)

    ds = datasets.Dataset.from_dict({"query": queries, "positive": [corpus[p] for p in inputs.positive]})
    out = st_util.mine_hard_negatives(ds, Lookup(), corpus=corpus, range_max=50, relative_margin=0.05,
                                      num_negatives=7, output_format="labeled-list", verbose=False)
    st = {queries.index(r["query"]): [row_of[t] for t in r["positive"][1:]] for r in out}
    config = MineConfig(device="cpu", exclude_same_document=False, duplicate_cosine=None, dedupe_text=False,
                        related=0, easy=0, hard_min=1, hard_max=7, docs_per_query=8)
    res = mine_arrays(MiningInputs(**{**inputs.__dict__, "doc_emb": emb, "query_emb": q}), config)
    full = [i for i, negs in st.items() if len(negs) == 7]
    assert len(full) > 50
    for i in full:
        assert res.kept[i]
        assert set(res.docs[i][res.bands[i] == 1].tolist()) == set(st[i])


# --- config ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    ({"hard_band": [0.5, 3.0]}, "bands"),
    ({"hard_band": [9.0, 3.0]}, "hard_band"),
    ({"docs_per_query": 12}, "docs_per_query"),
    ({"hard_min": 8}, "hard_min"),
    ({"related_score": "nearest"}, "related_score"),
    ({"sim_range": [1.0, 0.0]}, "sim_range"),
    ({"relative_margin": 1.5}, "relative_margin"),
])
def test_config_errors_name_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MineConfig(**change)


def test_config_from_params_mapping() -> None:
    c = to_dataclass(MineConfig, {"top_k": 30, "hard_band": [4.0, 9.5], "sim_range": None}, "mine")
    assert c.top_k == 30 and c.hard_band == [4.0, 9.5] and c.bands["hard"] == (4.0, 9.5)
    with pytest.raises(ConfigError, match="mine"):
        to_dataclass(MineConfig, {"top_kk": 3}, "mine")


def test_band_scores_map() -> None:
    config = MineConfig(sim_range=[0.2, 0.8])
    s = band_scores(np.array([[0.9, 0.8, 0.5, 0.2, 0.1]]), np.array([[0, 1, 1, 2, 3]]), config, (0.2, 0.8))
    assert s.tolist() == [[10.0, 9.0, 6.25, 1.5, 0.0]]


# --- files -------------------------------------------------------------------------------------------

def write_pipeline_inputs(root: Path, n_docs: int = 60, n_queries: int = 80,
                          seed: int = 0) -> dict[str, Path]:
    """Small passages.parquet, queries.parquet and an embeddings folder, as upstream stages write them."""
    rng = np.random.default_rng(seed)
    dim, n_topics = 24, 6
    topics = rng.standard_normal((n_topics, dim)).astype(np.float32)
    rows, vecs, clusters = [], [], []
    for d in range(n_docs):
        topic = d % n_topics
        doc_vec = topics[topic] + 0.7 * rng.standard_normal(dim).astype(np.float32)
        source = "kowiki" if d % 2 == 0 else "namuwiki"
        for k in range(int(rng.integers(1, 4))):
            rows.append({"passage_id": f"{source}:{d}#{k}", "source": source, "doc_id": str(d),
                         "chunk_index": k, "title": f"문서 {d}", "url": f"https://example.org/{d}",
                         "text": f"문서 {d}의 {k}번째 문단입니다. 내용 {rng.integers(1_000_000)}.",
                         "n_tokens": 12 + k, "sentence_starts": [0]})
            v = doc_vec + 0.5 * rng.standard_normal(dim).astype(np.float32)
            vecs.append(v / np.linalg.norm(v))
            clusters.append(topic)
    perm = rng.permutation(len(rows))  # embedding rows need not follow the passages' order
    emb = np.stack(vecs)
    interim, emb_dir = root / "interim", root / "embeddings"
    interim.mkdir(parents=True)
    emb_dir.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=PASSAGE_SCHEMA), interim / "passages.parquet")
    pos = rng.choice(len(rows), n_queries, replace=False)
    queries = []
    for i, p in enumerate(pos):
        r = rows[p]
        queries.append({"query_id": f"q{i}", "text": f"질문 {i}: {r['title']}",
                        "kind": ["title", "llm"][i % 2], "positive_id": r["passage_id"],
                        "doc_id": r["doc_id"], "source": r["source"],
                        "positive_text": (r["text"] + " (편집)") if i % 5 == 0 else None})
    queries.append({"query_id": "q_missing", "text": "임베딩 없음", "kind": "title",
                    "positive_id": rows[0]["passage_id"], "doc_id": rows[0]["doc_id"],
                    "source": rows[0]["source"], "positive_text": None})
    queries.append({"query_id": "q_bad_pos", "text": "없는 정답", "kind": "title",
                    "positive_id": "kowiki:999#0", "doc_id": "999", "source": "kowiki",
                    "positive_text": None})
    pq.write_table(pa.Table.from_pylist(queries), interim / "queries.parquet")
    qv = emb[pos] + 0.3 * rng.standard_normal((n_queries, dim)).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    np.save(emb_dir / "document_embeddings.npy", emb[perm].astype(np.float16))
    (emb_dir / "document_ids.txt").write_text("".join(rows[i]["passage_id"] + "\n" for i in perm))
    np.save(emb_dir / "query_embeddings.npy", np.concatenate([qv, qv[:1]]).astype(np.float16))
    (emb_dir / "query_ids.txt").write_text("".join(f"q{i}\n" for i in range(n_queries)) + "q_bad_pos\n")
    np.save(emb_dir / "cluster_ids.npy", np.array(clusters, np.int32)[perm])
    centroids = np.stack([emb[np.array(clusters) == c].mean(0) for c in range(n_topics)])
    np.save(emb_dir / "centroids.npy", centroids)
    np.save(emb_dir / "cluster_distances.npy", np.zeros(len(rows), np.float32))
    return {"passages": interim / "passages.parquet", "queries": interim / "queries.parquet",
            "embeddings": emb_dir, "mined": interim / "mined.parquet",
            "mine_report": interim / "mine_report.json"}


def test_mine_files(tmp_path: Path) -> None:
    paths = write_pipeline_inputs(tmp_path)
    report = mine(paths["passages"], paths["queries"], paths["embeddings"], paths["mined"],
                  paths["mine_report"], MineConfig(device="cpu", top_k=20))
    table = pq.read_table(paths["mined"])
    assert table.column_names == ["query_id", "doc_ids", "scores", "bands", "teacher_sims"]
    assert report.queries == 82 and report.kept == table.num_rows > 60
    assert report.dropped["query_not_embedded"] == 1 and report.dropped["positive_not_embedded"] == 1
    on_disk = json.loads(paths["mine_report"].read_text())
    assert on_disk["kept"] == report.kept and set(on_disk["dropped"]) == set(DROP_REASONS)
    for r in table.to_pylist():
        assert len(r["doc_ids"]) == 8 and r["bands"][0] == "positive" and r["scores"][0] == 10.0
        assert r["scores"] == sorted(r["scores"], reverse=True)
    first = table.to_pylist()[0]
    before = paths["mined"].read_bytes()
    mine(paths["passages"], paths["queries"], paths["embeddings"], paths["mined"], paths["mine_report"],
         MineConfig(device="cpu", top_k=20))
    assert paths["mined"].read_bytes() == before, "reruns write identical bytes"
    assert first["query_id"] == "q0"


def test_positive_text_override_is_deduplicated(tmp_path: Path) -> None:
    """A negative whose text equals the query's positive_text (not the passage text) is excluded."""
    ids, inputs = build()
    inputs.positive_hash[0] = text_hash("hard five")  # the positive, as trained, reads like P5 and P12
    docs, _, _ = row(ids, inputs, cfg())
    assert "P5" not in docs and "P12" not in docs
