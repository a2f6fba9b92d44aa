"""Ingest: read tagged sources, validate, normalise, filter and de-duplicate into ``documents.parquet``.

Every input row ends in exactly one place: ``documents.parquet`` or ``rejects.jsonl`` (with file, line,
reason and a preview). ``ingest_report.json`` counts each reason, separating *invalid* rows (the input is
broken) from rows *filtered* by policy (length, language, duplicates).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from kosparse.config import IngestConfig, SourceConfig
from kosparse.normalize import hangul_ratio, normalize_text
from kosparse.readers import RawRow, expand_globs, read_rows

INVALID_REASONS = (
    "malformed_json", "malformed_doc", "not_an_object", "invalid_utf8",
    "missing_field", "wrong_type", "empty_title", "oversized_text",
)
# `empty_text` is policy, not breakage: WikiExtractor exports write redirect pages as documents with an
# empty body (27% of the rows of the shared Korean Wikipedia sample), so counting them as invalid would
# trip the invalid-rate guard on every real dump.
FILTERED_REASONS = ("empty_text", "too_short", "low_hangul_ratio", "duplicate_id", "duplicate_text")

DOCUMENT_SCHEMA = pa.schema([
    ("source", pa.string()),
    ("id", pa.string()),
    ("url", pa.string()),
    ("title", pa.string()),
    ("text", pa.string()),
    ("language", pa.string()),
    ("n_chars", pa.int32()),
    ("hangul_ratio", pa.float32()),
])


class IngestError(RuntimeError):
    """Too many invalid rows in at least one file (the message names the files and reasons)."""


@dataclass
class FileStats:
    """Per-file counts."""

    file: str
    source: str
    rows: int = 0
    kept: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    filtered: Counter[str] = field(default_factory=Counter)


@dataclass
class IngestReport:
    """What ``ingest`` did, as written to ``ingest_report.json``."""

    rows_read: int
    documents_kept: int
    invalid: dict[str, int]
    filtered: dict[str, int]
    files: list[dict[str, Any]]
    bytes_read: int
    seconds: float
    stopped_at_max_docs: bool

    def to_json(self) -> str:
        """Serialise as pretty, stable JSON."""
        return json.dumps(asdict(self), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def _strip_namu(text: str) -> str:
    """Strip Namuwiki markup with the maintained ``namu-wiki-extractor`` package."""
    try:
        from namuwiki.extractor import extract_text
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError("markup: namu needs the `namu-wiki-extractor` package (pip install "
                          "namu-wiki-extractor)") from exc
    return str(extract_text(text))


def _check_record(rec: dict[str, Any]) -> tuple[str | None, str]:
    """Return ``(reason, detail)`` for a structurally invalid record, else ``(None, "")``."""
    for key in ("id", "title", "text"):
        if rec.get(key) is None:
            return "missing_field", key
    if isinstance(rec["id"], bool) or not isinstance(rec["id"], str | int):
        return "wrong_type", "id"
    for key in ("title", "text"):
        if not isinstance(rec[key], str):
            return "wrong_type", key
    for key in ("url", "language"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            return "wrong_type", key
    return None, ""


class _Rejects:
    """Writes rejected rows as JSON Lines and keeps the counts."""

    def __init__(self, path: Path, preview_chars: int) -> None:
        self._fh = path.open("wb")
        self._preview = preview_chars

    def write(self, stats: FileStats, row: RawRow, category: str, reason: str, detail: str = "",
              doc_id: str | None = None, preview: str = "") -> None:
        (stats.invalid if category == "invalid" else stats.filtered)[reason] += 1
        entry = {
            "file": stats.file, "line": row.line, "source": stats.source, "id": doc_id,
            "category": category, "reason": reason, "detail": detail,
            "preview": (preview or row.raw)[: self._preview],
        }
        self._fh.write(orjson.dumps(entry) + b"\n")

    def close(self) -> None:
        self._fh.close()


class _DocumentWriter:
    """Buffers accepted documents and writes them to Parquet in record batches."""

    def __init__(self, path: Path, batch_size: int) -> None:
        self._writer = pq.ParquetWriter(path, DOCUMENT_SCHEMA, compression="zstd")
        self._batch_size = batch_size
        self._cols: dict[str, list[Any]] = {name: [] for name in DOCUMENT_SCHEMA.names}

    def add(self, doc: dict[str, Any]) -> None:
        for name, col in self._cols.items():
            col.append(doc[name])
        if len(self._cols["id"]) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        if self._cols["id"]:
            self._writer.write_table(pa.table(self._cols, schema=DOCUMENT_SCHEMA))
            self._cols = {name: [] for name in DOCUMENT_SCHEMA.names}

    def close(self) -> None:
        self.flush()
        self._writer.close()


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def iter_source_rows(source: SourceConfig, root: Path, batch_size: int) -> Iterator[tuple[Path, RawRow]]:
    """Yield ``(file, row)`` for every row of every file of a source, files in sorted order.

    Args:
        source: The source's config.
        root: Base directory for relative globs.
        batch_size: Parquet batch size.

    Yields:
        Each file with each of its rows.
    """
    for path in expand_globs(source.paths, root):
        for row in read_rows(path, source.format, batch_size):
            yield path, row


def ingest(sources: list[SourceConfig], cfg: IngestConfig, documents_path: Path, rejects_path: Path,
           report_path: Path, root: Path = Path("."), max_docs: int | None = None,
           progress: Callable[[int], None] | None = None) -> IngestReport:
    """Run the ingest step.

    Args:
        sources: Tagged input sources, read in order.
        cfg: Filters and thresholds.
        documents_path: Output Parquet file of accepted documents.
        rejects_path: Output JSON Lines file of rejected rows.
        report_path: Output JSON report.
        root: Base directory for relative globs and for file names in the outputs.
        max_docs: Stop after this many accepted documents.
        progress: Optional callback called with the number of rows read so far, every 10,000 rows.

    Returns:
        The report that was written.

    Raises:
        IngestError: When a file's invalid rows exceed ``cfg.max_invalid_rate`` (after all outputs,
            including the report and the rejects, are written).
        kosparse.readers.InputError: When an input cannot be read at all.
    """
    for p in (documents_path, rejects_path, report_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rejects = _Rejects(rejects_path, cfg.preview_chars)
    writer = _DocumentWriter(documents_path, cfg.batch_size)
    seen_ids: set[tuple[str, str]] = set()
    seen_text: set[bytes] = set()
    all_stats: list[FileStats] = []
    rows_read = kept = bytes_read = 0
    stopped = False
    try:
        for source in sources:
            current: Path | None = None
            stats = FileStats("", source.name)
            for path, row in iter_source_rows(source, root, cfg.batch_size):
                if path != current:
                    current = path
                    stats = FileStats(_relative(path, root), source.name)
                    all_stats.append(stats)
                stats.rows += 1
                rows_read += 1
                bytes_read += row.nbytes
                if progress is not None and rows_read % 10_000 == 0:
                    progress(rows_read)
                doc = _accept(row, source, cfg, stats, rejects, seen_ids, seen_text)
                if doc is not None:
                    writer.add(doc)
                    stats.kept += 1
                    kept += 1
                    if max_docs is not None and kept >= max_docs:
                        stopped = True
                        break
            if stopped:
                break
    finally:
        writer.close()
        rejects.close()

    invalid: Counter[str] = Counter()
    filtered: Counter[str] = Counter()
    for s in all_stats:
        invalid.update(s.invalid)
        filtered.update(s.filtered)
    report = IngestReport(
        rows_read=rows_read, documents_kept=kept, invalid=dict(sorted(invalid.items())),
        filtered=dict(sorted(filtered.items())),
        files=[{"file": s.file, "source": s.source, "rows": s.rows, "kept": s.kept,
                "invalid": dict(sorted(s.invalid.items())), "filtered": dict(sorted(s.filtered.items()))}
               for s in all_stats],
        bytes_read=bytes_read, seconds=round(time.perf_counter() - t0, 3), stopped_at_max_docs=stopped,
    )
    report_path.write_text(report.to_json(), encoding="utf-8")
    _check_invalid_rate(all_stats, cfg, rejects_path)
    return report


def _accept(row: RawRow, source: SourceConfig, cfg: IngestConfig, stats: FileStats, rejects: _Rejects,
            seen_ids: set[tuple[str, str]], seen_text: set[bytes]) -> dict[str, Any] | None:
    """Validate, normalise and filter one row; record the reason when it is rejected."""
    if row.record is None:
        rejects.write(stats, row, "invalid", row.error or "invalid")
        return None
    rec = row.record
    reason, detail = _check_record(rec)
    if reason is not None:
        rejects.write(stats, row, "invalid", reason, detail, preview=orjson.dumps(rec, default=str).decode())
        return None
    doc_id = str(rec["id"])
    raw_text: str = rec["text"]
    if len(raw_text) > cfg.max_chars:
        rejects.write(stats, row, "invalid", "oversized_text", f"{len(raw_text)} chars > {cfg.max_chars}",
                      doc_id, raw_text)
        return None
    if source.markup == "namu":
        raw_text = _strip_namu(raw_text)
    text = normalize_text(raw_text)
    title = normalize_text(rec["title"]).replace("\n", " ")
    if not text:
        rejects.write(stats, row, "filtered", "empty_text", "", doc_id, rec["title"])
        return None
    if not title:
        rejects.write(stats, row, "invalid", "empty_title", "", doc_id, text)
        return None
    if len(text) < cfg.min_chars:
        rejects.write(stats, row, "filtered", "too_short", f"{len(text)} chars < {cfg.min_chars}", doc_id, text)
        return None
    ratio = hangul_ratio(text)
    if ratio < cfg.min_hangul_ratio:
        rejects.write(stats, row, "filtered", "low_hangul_ratio", f"{ratio:.3f} < {cfg.min_hangul_ratio}",
                      doc_id, text)
        return None
    if cfg.dedupe_id:
        key = (source.name, doc_id)
        if key in seen_ids:
            rejects.write(stats, row, "filtered", "duplicate_id", "", doc_id, text)
            return None
        seen_ids.add(key)
    if cfg.dedupe_text:
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=12).digest()
        if digest in seen_text:
            rejects.write(stats, row, "filtered", "duplicate_text", "", doc_id, text)
            return None
        seen_text.add(digest)
    return {
        "source": source.name, "id": doc_id, "url": rec.get("url") or "", "title": title, "text": text,
        "language": rec.get("language") or source.language, "n_chars": len(text), "hangul_ratio": ratio,
    }


def _check_invalid_rate(all_stats: list[FileStats], cfg: IngestConfig, rejects_path: Path) -> None:
    bad = []
    for s in all_stats:
        n_invalid = sum(s.invalid.values())
        if s.rows >= cfg.min_rows_for_rate and n_invalid / s.rows > cfg.max_invalid_rate:
            reasons = ", ".join(f"{k}={v}" for k, v in s.invalid.most_common())
            bad.append(f"{s.file}: {n_invalid}/{s.rows} invalid rows ({reasons})")
    if bad:
        raise IngestError(
            f"invalid rows exceed ingest.max_invalid_rate={cfg.max_invalid_rate} in {len(bad)} file(s):\n  "
            + "\n  ".join(bad) + f"\nEach rejected row is listed in {rejects_path}."
        )
