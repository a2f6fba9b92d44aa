"""Ingest: every layout and compression, every rejected-row reason, the invalid-rate guard."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kosparse.config import IngestConfig, SourceConfig
from kosparse.ingest import IngestError, ingest
from kosparse.readers import InputError, detect_format, read_rows

BODY = "대한민국의 수도는 서울특별시이다. 서울은 한강을 끼고 있으며 인구가 가장 많은 도시이다."
GOOD = {"id": "1", "url": "https://ko.wikipedia.org/wiki?curid=1", "title": "서울", "text": BODY, "language": "ko"}


def _doc(i: int, **kw: Any) -> dict[str, Any]:
    return {**GOOD, "id": str(i), "text": f"{BODY} 문서 번호 {i}.", **kw}


def _run(tmp_path: Path, files: list[str], cfg: IngestConfig | None = None, fmt: str = "auto",
         ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    src = SourceConfig(name="wiki", paths=files, format=fmt)
    out = tmp_path / "out"
    ingest([src], cfg or IngestConfig(min_rows_for_rate=1000), out / "documents.parquet", out / "rejects.jsonl",
           out / "report.json", root=tmp_path)
    report = json.loads((out / "report.json").read_text())
    docs = pq.read_table(out / "documents.parquet").to_pylist()
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    return report, docs, rejects


def _write_jsonl(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_every_invalid_reason_is_quarantined(tmp_path: Path) -> None:
    lines = [
        json.dumps(_doc(1), ensure_ascii=False).encode(),
        b'{"id": "2", "title": "x", "text": ',                                        # malformed_json
        json.dumps({"id": "3", "url": "u", "text": BODY}).encode(),                     # missing_field:title
        json.dumps({**_doc(4), "text": 42}).encode(),                                   # wrong_type:text
        json.dumps({**_doc(5), "id": [5]}).encode(),                                    # wrong_type:id
        b'{"id": "6", "title": "\xff\xfe", "text": "x"}',                               # invalid_utf8
        json.dumps(_doc(7, text="x" * 500)).encode(),                                   # oversized_text
        b"[1, 2]",                                                                      # not_an_object
        json.dumps(_doc(9, title="  ")).encode(),                                       # empty_title
    ]
    _write_jsonl(tmp_path / "a.jsonl", lines)
    report, docs, rejects = _run(tmp_path, ["a.jsonl"], IngestConfig(max_chars=400, min_rows_for_rate=1000))
    assert [d["id"] for d in docs] == ["1"]
    assert report["invalid"] == {"malformed_json": 1, "missing_field": 1, "wrong_type": 2, "invalid_utf8": 1,
                                 "oversized_text": 1, "not_an_object": 1, "empty_title": 1}
    by_line = {r["line"]: r for r in rejects}
    assert by_line[2]["reason"] == "malformed_json" and by_line[2]["file"] == "a.jsonl"
    assert by_line[3]["detail"] == "title"
    assert by_line[4]["detail"] == "text" and by_line[5]["detail"] == "id"
    assert by_line[6]["reason"] == "invalid_utf8"
    assert by_line[7]["reason"] == "oversized_text" and len(by_line[7]["preview"]) == 200
    assert all(r["category"] == "invalid" for r in rejects)
    assert report["rows_read"] == len(docs) + len(rejects) == 9  # nothing lost


def test_every_filter_reason_is_counted(tmp_path: Path) -> None:
    rows = [
        _doc(1),
        _doc(2, text=""),                                   # empty_text (a redirect in WikiExtractor dumps)
        _doc(3, text="짧은 글."),                            # too_short
        _doc(4, text="English only text that is long enough to pass the length filter easily."),  # low_hangul
        _doc(1, text=BODY + " 다른 본문"),                   # duplicate_id
        {**_doc(6), "text": _doc(1)["text"] + "  "},       # duplicate_text (same after normalisation)
    ]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    report, docs, rejects = _run(tmp_path, ["a.jsonl"])
    assert [d["id"] for d in docs] == ["1"]
    assert report["filtered"] == {"empty_text": 1, "too_short": 1, "low_hangul_ratio": 1, "duplicate_id": 1,
                                  "duplicate_text": 1}
    assert report["invalid"] == {}
    assert {r["category"] for r in rejects} == {"filtered"}


def test_invalid_rate_guard_names_file_and_reasons(tmp_path: Path) -> None:
    lines = [json.dumps(_doc(i), ensure_ascii=False).encode() for i in range(8)] + [b"{bad", b"{bad"]
    _write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(IngestError, match=r"bad\.jsonl: 2/10 invalid rows \(malformed_json=2\)"):
        _run(tmp_path, ["bad.jsonl"], IngestConfig(max_invalid_rate=0.1, min_rows_for_rate=5))
    # outputs were still written, so the user can inspect them
    assert (tmp_path / "out" / "report.json").exists()
    assert len((tmp_path / "out" / "rejects.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("opener,suffix", [(gzip.open, ".gz"), (bz2.open, ".bz2"), (lzma.open, ".xz"), (open, "")])
def test_compressed_jsonl(tmp_path: Path, opener: Any, suffix: str) -> None:
    path = tmp_path / f"a.jsonl{suffix}"
    with opener(path, "wb") as fh:
        for i in range(3):
            fh.write(json.dumps(_doc(i), ensure_ascii=False).encode() + b"\n")
    _, docs, _ = _run(tmp_path, [path.name])
    assert [d["id"] for d in docs] == ["0", "1", "2"]


def test_json_array_parquet_and_wikiextractor(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([_doc(1), _doc(2), "oops"], ensure_ascii=False))
    pq.write_table(pa.Table.from_pylist([{**_doc(3), "id": 3}, {**_doc(4, text=None), "id": 4}]),
                   tmp_path / "b.parquet")
    (tmp_path / "wiki_00").write_text(
        f'<doc id="5" url="https://ko.wikipedia.org/wiki?curid=5" title="지미 카터">\n지미 카터\n{BODY} 카터.\n</doc>\n'
        f'<doc id="6" url="u" title="끝나지 않음">\n{BODY}\n', encoding="utf-8")
    report, docs, rejects = _run(tmp_path, ["a.json", "b.parquet", "wiki_*"])
    assert [d["id"] for d in docs] == ["1", "2", "3", "5"]
    assert docs[-1]["title"] == "지미 카터" and not docs[-1]["text"].startswith("지미 카터\n")
    assert sorted(r["reason"] for r in rejects) == ["malformed_doc", "missing_field", "not_an_object"]
    assert report["rows_read"] == 7


def test_namu_markup_is_stripped(tmp_path: Path) -> None:
    pytest.importorskip("namuwiki")
    raw = ("'''서울특별시'''는 [[대한민국]]의 [[수도(도시)|수도]]이다. "
           "서울은 [[한강]]을 끼고 있으며 인구가 가장 많은 도시이다.")
    (tmp_path / "n.jsonl").write_text(json.dumps(_doc(1, text=raw), ensure_ascii=False))
    src = SourceConfig(name="namuwiki", paths=["n.jsonl"], markup="namu")
    out = tmp_path / "o"
    ingest([src], IngestConfig(min_chars=20), out / "d.parquet", out / "r.jsonl", out / "rep.json", root=tmp_path)
    text = pq.read_table(out / "d.parquet").column("text")[0].as_py()
    assert text == "서울특별시는 대한민국의 수도이다. 서울은 한강을 끼고 있으며 인구가 가장 많은 도시이다."


def test_missing_input_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no input file matches"):
        _run(tmp_path, ["nothing/*.jsonl"])
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format(Path("x.csv"))
    (tmp_path / "c.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a readable Parquet"):
        list(read_rows(tmp_path / "c.parquet"))


def test_max_docs_stops_early(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(_doc(i), ensure_ascii=False) for i in range(10)))
    src = SourceConfig(name="wiki", paths=["a.jsonl"])
    out = tmp_path / "o"
    rep = ingest([src], IngestConfig(), out / "d.parquet", out / "r.jsonl", out / "rep.json", root=tmp_path,
                 max_docs=4)
    assert rep.documents_kept == 4 and rep.stopped_at_max_docs


def test_shared_kowiki_first_file(shared_kowiki: Path, tmp_path: Path) -> None:
    src = SourceConfig(name="kowiki", paths=[str(shared_kowiki / "kowiki-00000-of-00012.jsonl.gz")])
    out = tmp_path / "o"
    rep = ingest([src], IngestConfig(), out / "d.parquet", out / "r.jsonl", out / "rep.json")
    assert rep.rows_read == 2716
    assert rep.invalid == {}
    n_rejects = len((out / "r.jsonl").read_text().splitlines())
    assert rep.documents_kept + n_rejects == rep.rows_read


def test_worker_processes_give_the_same_outputs(tmp_path: Path) -> None:
    """Rows are normalised on worker processes in small batches across two files and two sources."""
    lines = [json.dumps(_doc(i), ensure_ascii=False).encode() for i in range(20)]
    lines[3] = b"{bad"                                                               # malformed_json
    lines[5] = json.dumps(_doc(5, text="짧은 글.")).encode()                          # too_short
    lines[8] = json.dumps(_doc(2)).encode()                                           # duplicate_id
    lines[11] = json.dumps({**_doc(11), "text": _doc(4)["text"] + "  "}).encode()     # duplicate_text
    _write_jsonl(tmp_path / "a.jsonl", lines[:12])
    _write_jsonl(tmp_path / "b.jsonl", lines[12:])
    _write_jsonl(tmp_path / "c.jsonl", [json.dumps(_doc(100 + i), ensure_ascii=False).encode() for i in range(10)])
    sources = [SourceConfig(name="wiki", paths=["a.jsonl", "b.jsonl"]), SourceConfig(name="namu", paths=["c.jsonl"])]
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        cfg = IngestConfig(workers=workers, workers_batch=5, min_rows_for_rate=1000)
        rep = ingest(sources, cfg, out / "d.parquet", out / "r.jsonl", out / "rep.json", root=tmp_path, max_docs=20)
        report = json.loads((out / "rep.json").read_text())
        report.pop("seconds")
        outputs.append((pq.read_table(out / "d.parquet"), (out / "r.jsonl").read_bytes(), report))
        assert rep.stopped_at_max_docs and rep.documents_kept == 20
    (docs1, rej1, rep1), (docs2, rej2, rep2) = outputs
    assert docs1.equals(docs2) and rej1 == rej2 and rep1 == rep2
    assert rep1["filtered"] == {"too_short": 1, "duplicate_id": 1, "duplicate_text": 1}
    assert rep1["invalid"] == {"malformed_json": 1}
    assert docs1.column("source").to_pylist().count("namu") == 20 - 16  # stopped inside the second source
