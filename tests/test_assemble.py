"""Tests for kosparse.assemble: row format, order, split by source document, stable bytes, metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kosparse.assemble import AssembleConfig, assemble, created_at, split_of
from kosparse.chunk import PASSAGE_SCHEMA
from kosparse.config import ConfigError
from kosparse.mine import MINED_SCHEMA

OUTPUTS = ("train.jsonl", "val.jsonl", "metadata.json", "score_distribution.csv", "row_index.parquet")


def passage(pid: str, text: str) -> dict[str, Any]:
    source, rest = pid.split(":")
    doc_id, k = rest.split("#")
    return {"passage_id": pid, "source": source, "doc_id": doc_id, "chunk_index": int(k), "title": doc_id,
            "url": "", "text": text, "n_tokens": len(text.split()), "sentence_starts": [0]}


def write_inputs(root: Path, n_docs: int = 3) -> dict[str, Path]:
    """Queries on ``n_docs`` documents (two per document), each row: positive, 2 hard, related, easy."""
    passages, queries, mined = [], [], []
    for d in range(n_docs):
        for k in range(2):
            passages.append(passage(f"wiki:{d}#{k}", f"문서 {d} 문단 {k} 본문"))
    passages.append(passage("namu:x#0", "나무 문서"))
    for d in range(n_docs):
        for k in range(2):
            qid = f"q{d}-{k}"
            others = [f"wiki:{(d + j) % n_docs}#{k}" for j in (1, 2)]
            queries.append({"query_id": qid, "text": f"질문 {d}-{k}", "kind": "title" if k == 0 else "llm",
                            "positive_id": f"wiki:{d}#{k}", "doc_id": str(d), "source": "wiki",
                            "positive_text": "정답 문장을 뺀 본문" if (d, k) == (0, 1) else None})
            # stored in mine's order except the easy/related pair, to check that assemble sorts
            doc_ids = [f"wiki:{d}#{k}", *others, "namu:x#0", f"wiki:{d}#{1 - k}"]
            mined.append({"query_id": qid, "doc_ids": doc_ids, "scores": [10.0, 7.25, 6.5, 0.4, 2.0],
                          "bands": ["positive", "hard", "hard", "easy", "related"],
                          "teacher_sims": [0.9, 0.8, 0.7, 0.1, 0.3]})
    interim = root / "interim"
    interim.mkdir(parents=True, exist_ok=True)
    paths = {"passages": interim / "passages.parquet", "queries": interim / "queries.parquet",
             "mined": interim / "mined.parquet", "mine_report": interim / "mine_report.json"}
    pq.write_table(pa.Table.from_pylist(passages, schema=PASSAGE_SCHEMA), paths["passages"])
    pq.write_table(pa.Table.from_pylist(queries), paths["queries"])
    pq.write_table(pa.Table.from_pylist(mined, schema=MINED_SCHEMA), paths["mined"])
    paths["mine_report"].write_text(json.dumps({"dropped": {"too_few_hard_negatives": 3}}))
    return paths


def run(paths: dict[str, Path], out: Path, **cfg: Any) -> Any:
    return assemble(paths["mined"], paths["queries"], paths["passages"], out, AssembleConfig(**cfg),
                    embedding_model="intfloat/multilingual-e5-small", mine_report=paths["mine_report"])


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rows_sorted_positive_first_with_positive_text(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path)
    res = run(paths, tmp_path / "out", val_fraction=0.0)
    train = rows(tmp_path / "out" / "train.jsonl")
    assert res.train_samples == len(train) == 6 and res.val_samples == 0
    by_query = {r["query"]: r for r in train}
    r = by_query["질문 1-0"]
    assert list(r) == ["query", "docs", "scores"]
    assert r["scores"] == [10.0, 7.25, 6.5, 2.0, 0.4]
    assert r["docs"] == ["문서 1 문단 0 본문", "문서 2 문단 0 본문", "문서 0 문단 0 본문",
                         "문서 1 문단 1 본문", "나무 문서"]
    assert by_query["질문 0-1"]["docs"][0] == "정답 문장을 뺀 본문"  # positive_text replaces the passage
    assert "질문".encode() in (tmp_path / "out" / "train.jsonl").read_bytes()  # ensure_ascii=False
    from datasets import load_from_disk

    assert len(load_from_disk(str(tmp_path / "out" / "hf" / "val"))) == 0  # an empty split still loads


def test_split_by_source_document(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path, n_docs=200)
    res = run(paths, tmp_path / "out", val_fraction=0.1, seed=3)
    index = pq.read_table(tmp_path / "out" / "row_index.parquet").to_pylist()
    docs = {s: {(r["source"], r["doc_id"]) for r in index if r["split"] == s} for s in ("train", "val")}
    assert not docs["train"] & docs["val"]
    assert 8 <= len(docs["val"]) <= 35  # ~10% of 200 documents
    assert res.val_samples == 2 * len(docs["val"])  # both queries of a document land together
    for r in index:
        assert r["split"] == split_of(r["source"], r["doc_id"], 3, 0.1)
    other = run(paths, tmp_path / "other", val_fraction=0.1, seed=4)
    assert other.val_samples != res.val_samples or (tmp_path / "other" / "val.jsonl").read_bytes() != (
        tmp_path / "out" / "val.jsonl").read_bytes()


def test_split_of_is_deterministic() -> None:
    assert split_of("kowiki", "42", 0, 0.5) == split_of("kowiki", "42", 0, 0.5)
    assert {split_of("kowiki", str(i), 0, 0.0) for i in range(50)} == {"train"}
    assert split_of("kowiki", "1", 0, 0.999999) == "val"


def test_two_runs_are_byte_identical(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path, n_docs=40)
    run(paths, tmp_path / "a")
    run(paths, tmp_path / "b")
    for name in OUTPUTS:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "hf").rglob("*") if p.is_file())
    assert files_a and files_a == sorted(p.relative_to(tmp_path / "b")
                                         for p in (tmp_path / "b" / "hf").rglob("*") if p.is_file())
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_hf_datasets_load_and_match(tmp_path: Path) -> None:
    from datasets import load_from_disk

    paths = write_inputs(tmp_path, n_docs=30)
    run(paths, tmp_path / "out")
    for split in ("train", "val"):
        ds = load_from_disk(str(tmp_path / "out" / "hf" / split))
        assert ds.column_names == ["query", "docs", "scores"]
        assert ds.to_list() == rows(tmp_path / "out" / f"{split}.jsonl")


def test_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    paths = write_inputs(tmp_path, n_docs=20)
    run(paths, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text(encoding="utf-8"))
    assert meta["total_queries"] == 40 == meta["train_samples"] + meta["val_samples"]
    assert meta["docs_per_query"] == 5
    assert meta["embedding_model"] == "intfloat/multilingual-e5-small"
    assert meta["source_datasets"] == ["wiki"]
    assert "created_at" not in meta  # no fixed source of time: omitted rather than unstable
    stats = meta["statistics"]
    assert stats["scores_by_band"]["hard"] == {"n": 80, "min": 6.5, "mean": 6.875, "max": 7.25}
    assert stats["scores_by_band"]["positive"]["min"] == 10.0
    assert sum(stats["query_kinds"]["train"].values()) + sum(stats["query_kinds"]["val"].values()) == 40
    assert stats["dropped"]["mine"] == {"too_few_hard_negatives": 3}
    assert stats["query_chars"]["n"] == 40 and stats["doc_tokens"]["n"] == 200
    csv = (tmp_path / "out" / "score_distribution.csv").read_text().splitlines()
    assert csv[0] == "score,positive,hard,related,easy"
    counts = {line.split(",")[0]: line.split(",")[1:] for line in csv[1:]}
    assert counts["10.0000"] == ["40", "0", "0", "0"] and counts["7.2500"] == ["0", "40", "0", "0"]
    assert counts["0.2500"] == ["0", "0", "0", "40"]


def test_created_at_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    assert created_at(AssembleConfig(created_at="2024-05-01T00:00:00Z"), {}) == "2024-05-01T00:00:00Z"
    assert created_at(AssembleConfig(), {"SOURCE_DATE_EPOCH": "1700000000"}) == "2023-11-14T22:13:20Z"
    assert created_at(AssembleConfig(), {}) is None
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        created_at(AssembleConfig(), {"SOURCE_DATE_EPOCH": "yesterday"})
    with pytest.raises(ConfigError, match="created_at"):
        AssembleConfig(created_at="last tuesday")
    with pytest.raises(ConfigError, match="val_fraction"):
        AssembleConfig(val_fraction=1.0)


def test_created_at_param_written(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path)
    run(paths, tmp_path / "out", created_at="2024-05-01T00:00:00Z")
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["created_at"] == "2024-05-01T00:00:00Z"


def test_missing_passage_drops_the_row(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path)
    table = pq.read_table(paths["passages"])
    pq.write_table(table.filter(pa.compute.not_equal(table["passage_id"], "namu:x#0")), paths["passages"])
    res = run(paths, tmp_path / "out")
    assert res.train_samples + res.val_samples == 0 and res.dropped == {"passage_missing": 6}
